"""The Salesforce object model salesops works with: API names, field types, picklists.

This is the one contract shared by the org simulator (`sandbox.org`), the HTTPS emulator
(`sandbox.api`, which answers `describe` from it) and the extractor (`assets.salesforce`, which
checks a real org's `describe` against the fields it requires). Field names are Salesforce API
names; types are Salesforce `describe` field types.

Loaded into DuckDB by dlt, names become snake_case (`StageName` -> `stage_name`,
`MQL_Date__c` -> `mql_date_c`); dbt staging reads those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Salesforce describe types used here.
ID, STRING, PICKLIST, BOOLEAN, CURRENCY, DOUBLE, INT, PERCENT = (
    "id",
    "string",
    "picklist",
    "boolean",
    "currency",
    "double",
    "int",
    "percent",
)
DATE, DATETIME, REFERENCE, EMAIL, TEXTAREA = "date", "datetime", "reference", "email", "textarea"

# The org's opportunity stage set, in order, with default probability (0-100, as Salesforce stores
# it; marts convert to a 0-1 fraction) and forecast category.
STAGES: list[tuple[str, int, str]] = [
    ("Prospecting", 10, "Pipeline"),
    ("Qualification", 20, "Pipeline"),
    ("Needs Analysis", 40, "Pipeline"),
    ("Proposal", 60, "Best Case"),
    ("Negotiation", 80, "Commit"),
    ("Closed Won", 100, "Closed"),
    ("Closed Lost", 0, "Omitted"),
]
OPEN_STAGES = [s for s, _, _ in STAGES if not s.startswith("Closed")]
FORECAST_CATEGORIES = ["Pipeline", "Best Case", "Commit", "Closed", "Omitted"]
LEAD_STATUSES = ["Open", "Working", "MQL", "SQL", "Converted", "Disqualified"]
LEAD_SOURCES = [
    "Web",
    "Paid Search",
    "Paid Social",
    "Email",
    "Webinar",
    "Event",
    "Partner",
    "Outbound",
    "Referral",
]
SEGMENTS = ["SMB", "Mid-Market", "Enterprise"]
REGIONS = ["NA", "EMEA", "APAC"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
CORPORATE_CURRENCY = "USD"
COMPETITORS = ["Acme CRM", "Globex", "Initech", "Umbrella", "None"]
LOSS_REASONS = ["Price", "Features", "Timing", "Competitor", "No Decision", "Champion Left"]
OPPORTUNITY_TYPES = ["New Business", "Expansion", "Renewal"]
PRODUCT_FAMILIES = ["Platform", "Add-on", "Services"]
TASK_SUBTYPES = ["Call", "Email", "Task"]
EVENT_TYPES = ["Meeting", "Demo", "Onsite"]
CAMPAIGN_TYPES = ["Webinar", "Paid Search", "Paid Social", "Email", "Event", "Content"]

# Marketing data contract (DESIGN.md): the channels and touch types landing files may use. The
# generator, the loader and the quality checks all read these.
MARKETING_CHANNELS: tuple[str, ...] = (
    "paid_search",
    "paid_social",
    "display",
    "email",
    "webinar",
    "events",
    "organic_search",
    "direct",
    "referral",
    "partner",
)
TOUCH_TYPES: tuple[str, ...] = (
    "web_visit",
    "form_fill",
    "webinar",
    "ad_click",
    "email_click",
    "event",
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    nillable: bool = True
    picklist: tuple[str, ...] = ()
    reference_to: str | None = None

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")


@dataclass(frozen=True)
class SObject:
    name: str
    fields: tuple[Field, ...]
    # Objects Salesforce never soft-deletes have no IsDeleted field (User, UserRole, currencies).
    deletable: bool = True
    # Fields the marts need; extraction fails with a clear error if describe lacks one.
    required: tuple[str, ...] = field(default=())

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")


def _f(name: str, type_: str, nillable: bool = True, picklist=(), ref: str | None = None) -> Field:
    return Field(name, type_, nillable, tuple(picklist), ref)


def _audit(deletable: bool = True) -> tuple[Field, ...]:
    base = (
        _f("CreatedDate", DATETIME, False),
        _f("LastModifiedDate", DATETIME, False),
        _f("SystemModstamp", DATETIME, False),
    )
    return base + ((_f("IsDeleted", BOOLEAN, False),) if deletable else ())


def _obj(name: str, fields: list[Field], deletable: bool = True, required=None) -> SObject:
    fs = (_f("Id", ID, False), *fields, *_audit(deletable))
    req = tuple(required) if required is not None else tuple(f.name for f in fs)
    return SObject(name, fs, deletable, req)


OBJECTS: dict[str, SObject] = {
    o.name: o
    for o in [
        _obj(
            "UserRole",
            [
                _f("Name", STRING, False),
                _f("DeveloperName", STRING),
                _f("ParentRoleId", REFERENCE, ref="UserRole"),
            ],
            deletable=False,
        ),
        _obj(
            "User",
            [
                _f("Username", STRING, False),
                _f("Name", STRING, False),
                _f("FirstName", STRING),
                _f("LastName", STRING, False),
                _f("Email", EMAIL, False),
                _f("Title", STRING),
                _f("IsActive", BOOLEAN, False),
                _f("UserRoleId", REFERENCE, ref="UserRole"),
                _f("ManagerId", REFERENCE, ref="User"),
                _f("Region__c", PICKLIST, picklist=REGIONS),
                _f("Segment__c", PICKLIST, picklist=SEGMENTS),
                _f("Hire_Date__c", DATE),
                _f("Termination_Date__c", DATE),
            ],
            deletable=False,
        ),
        _obj(
            "Account",
            [
                _f("Name", STRING, False),
                _f("Type", PICKLIST, picklist=["Prospect", "Customer", "Partner", "Churned"]),
                _f(
                    "Industry",
                    PICKLIST,
                    picklist=[
                        "Software",
                        "Finance",
                        "Healthcare",
                        "Retail",
                        "Manufacturing",
                        "Education",
                        "Media",
                    ],
                ),
                _f("BillingCountry", STRING),
                _f("NumberOfEmployees", INT),
                _f("AnnualRevenue", CURRENCY),
                _f("OwnerId", REFERENCE, False, ref="User"),
                _f("Segment__c", PICKLIST, picklist=SEGMENTS),
                _f("Region__c", PICKLIST, picklist=REGIONS),
                _f("CurrencyIsoCode", PICKLIST, False, picklist=CURRENCIES),
            ],
        ),
        _obj(
            "Contact",
            [
                _f("AccountId", REFERENCE, ref="Account"),
                _f("FirstName", STRING),
                _f("LastName", STRING, False),
                _f("Email", EMAIL),
                _f("Title", STRING),
                _f("LeadSource", PICKLIST, picklist=LEAD_SOURCES),
                _f("OwnerId", REFERENCE, False, ref="User"),
            ],
        ),
        _obj(
            "Lead",
            [
                _f("FirstName", STRING),
                _f("LastName", STRING, False),
                _f("Email", EMAIL),
                _f("Company", STRING, False),
                _f("Status", PICKLIST, False, picklist=LEAD_STATUSES),
                _f("LeadSource", PICKLIST, picklist=LEAD_SOURCES),
                _f("OwnerId", REFERENCE, False, ref="User"),
                _f("Segment__c", PICKLIST, picklist=SEGMENTS),
                _f("IsConverted", BOOLEAN, False),
                _f("ConvertedDate", DATE),
                _f("ConvertedAccountId", REFERENCE, ref="Account"),
                _f("ConvertedContactId", REFERENCE, ref="Contact"),
                _f("ConvertedOpportunityId", REFERENCE, ref="Opportunity"),
                _f("MQL_Date__c", DATE),
                _f("SQL_Date__c", DATE),
            ],
        ),
        _obj(
            "Campaign",
            [
                _f("Name", STRING, False),
                _f("Type", PICKLIST, picklist=CAMPAIGN_TYPES),
                _f("Status", PICKLIST, picklist=["Planned", "In Progress", "Completed", "Aborted"]),
                _f("StartDate", DATE),
                _f("EndDate", DATE),
                _f("BudgetedCost", CURRENCY),
                _f("ActualCost", CURRENCY),
                _f("Channel__c", STRING),
            ],
        ),
        _obj(
            "CampaignMember",
            [
                _f("CampaignId", REFERENCE, False, ref="Campaign"),
                _f("LeadId", REFERENCE, ref="Lead"),
                _f("ContactId", REFERENCE, ref="Contact"),
                _f("Status", PICKLIST, picklist=["Sent", "Responded"]),
                _f("HasResponded", BOOLEAN, False),
                _f("FirstRespondedDate", DATE),
            ],
        ),
        _obj(
            "Opportunity",
            [
                _f("Name", STRING, False),
                _f("AccountId", REFERENCE, ref="Account"),
                _f("OwnerId", REFERENCE, False, ref="User"),
                _f("StageName", PICKLIST, False, picklist=[s for s, _, _ in STAGES]),
                _f("Amount", CURRENCY),
                _f("CurrencyIsoCode", PICKLIST, False, picklist=CURRENCIES),
                _f("Probability", PERCENT),
                _f("CloseDate", DATE, False),
                _f("IsClosed", BOOLEAN, False),
                _f("IsWon", BOOLEAN, False),
                _f("ForecastCategoryName", PICKLIST, picklist=FORECAST_CATEGORIES),
                _f("Type", PICKLIST, picklist=OPPORTUNITY_TYPES),
                _f("LeadSource", PICKLIST, picklist=LEAD_SOURCES),
                _f("CampaignId", REFERENCE, ref="Campaign"),
                _f("Competitor__c", PICKLIST, picklist=COMPETITORS),
                _f("Loss_Reason__c", PICKLIST, picklist=LOSS_REASONS),
            ],
        ),
        _obj(
            "OpportunityHistory",
            [
                _f("OpportunityId", REFERENCE, False, ref="Opportunity"),
                _f("StageName", PICKLIST, False, picklist=[s for s, _, _ in STAGES]),
                _f("Amount", CURRENCY),
                _f("Probability", PERCENT),
                _f("CloseDate", DATE),
                _f("ForecastCategory", PICKLIST, picklist=FORECAST_CATEGORIES),
                _f("CreatedById", REFERENCE, ref="User"),
            ],
        ),
        _obj(
            "OpportunityContactRole",
            [
                _f("OpportunityId", REFERENCE, False, ref="Opportunity"),
                _f("ContactId", REFERENCE, False, ref="Contact"),
                _f(
                    "Role",
                    PICKLIST,
                    picklist=[
                        "Decision Maker",
                        "Economic Buyer",
                        "Influencer",
                        "Technical Buyer",
                        "Champion",
                    ],
                ),
                _f("IsPrimary", BOOLEAN, False),
            ],
        ),
        _obj(
            "Product2",
            [
                _f("Name", STRING, False),
                _f("ProductCode", STRING),
                _f("Family", PICKLIST, picklist=PRODUCT_FAMILIES),
                _f("IsActive", BOOLEAN, False),
            ],
        ),
        _obj(
            "OpportunityLineItem",
            [
                _f("OpportunityId", REFERENCE, False, ref="Opportunity"),
                _f("Product2Id", REFERENCE, ref="Product2"),
                _f("Quantity", DOUBLE),
                _f("UnitPrice", CURRENCY),
                _f("TotalPrice", CURRENCY),
            ],
        ),
        _obj(
            "Task",
            [
                _f("Subject", STRING),
                _f("TaskSubtype", PICKLIST, picklist=TASK_SUBTYPES),
                _f("Status", PICKLIST, picklist=["Not Started", "Completed"]),
                _f("ActivityDate", DATE),
                _f("OwnerId", REFERENCE, False, ref="User"),
                _f("WhoId", REFERENCE),
                _f("WhatId", REFERENCE),
                _f("CallDurationInSeconds", INT),
            ],
        ),
        _obj(
            "Event",
            [
                _f("Subject", STRING),
                _f("Type", PICKLIST, picklist=EVENT_TYPES),
                _f("StartDateTime", DATETIME),
                _f("EndDateTime", DATETIME),
                _f("DurationInMinutes", INT),
                _f("ActivityDate", DATE),
                _f("OwnerId", REFERENCE, False, ref="User"),
                _f("WhoId", REFERENCE),
                _f("WhatId", REFERENCE),
            ],
        ),
        _obj(
            "ForecastingQuota",
            [
                _f("QuotaOwnerId", REFERENCE, False, ref="User"),
                _f("StartDate", DATE, False),
                _f("QuotaAmount", CURRENCY),
                _f("CurrencyIsoCode", PICKLIST, picklist=CURRENCIES),
            ],
        ),
        _obj(
            "CurrencyType",
            [
                _f("IsoCode", PICKLIST, False, picklist=CURRENCIES),
                _f("ConversionRate", DOUBLE, False),
                _f("DecimalPlaces", INT),
                _f("IsActive", BOOLEAN, False),
                _f("IsCorporate", BOOLEAN, False),
            ],
            deletable=False,
        ),
        _obj(
            "DatedConversionRate",
            [
                _f("IsoCode", PICKLIST, False, picklist=CURRENCIES),
                _f("ConversionRate", DOUBLE, False),
                _f("StartDate", DATE, False),
                _f("NextStartDate", DATE),
            ],
            deletable=False,
        ),
    ]
}

# Extraction order: parents first (not required by merge-on-Id, but it makes logs readable).
OBJECT_NAMES: list[str] = list(OBJECTS)


def stage_probability(stage: str) -> int:
    for name, prob, _ in STAGES:
        if name == stage:
            return prob
    raise KeyError(stage)


def snake(name: str) -> str:
    """The column name dlt's default naming convention gives a Salesforce API name."""
    out: list[str] = []
    for i, ch in enumerate(name):
        word_start = ch.isupper() and i > 0 and name[i - 1] != "_"
        if word_start and (
            not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())
        ):
            out.append("_")
        out.append(ch.lower())
    s = "".join(out)
    while "__" in s:
        s = s.replace("__", "_")
    return s
