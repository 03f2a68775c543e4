"""Field plans from describe: required fields, configured extras, Arrow types, column names."""

import pyarrow as pa
import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention

from assets.salesforce.fields import MissingFieldError, arrow_type, plan_object
from sandbox.schema import OBJECTS, snake


def describe_of(obj: str, extra: dict[str, str] | None = None, drop: str | None = None) -> dict:
    fields = [{"name": f.name, "type": f.type} for f in OBJECTS[obj].fields if f.name != drop]
    fields += [{"name": n, "type": t} for n, t in (extra or {}).items()]
    return {"name": obj, "fields": fields}


def test_plan_has_required_fields_in_schema_order_and_types():
    plan = plan_object("Opportunity", describe_of("Opportunity", {"Other__c": "string"}))
    assert list(plan.fields) == OBJECTS["Opportunity"].field_names  # extras only when configured
    assert plan.deletable
    sch = plan.arrow_schema
    assert sch.field("amount").type == pa.float64()
    assert sch.field("close_date").type == pa.date32()
    assert sch.field("is_won").type == pa.bool_()
    assert sch.field("system_modstamp").type == pa.timestamp("us", tz="UTC")
    assert sch.field("competitor_c").type == pa.string()
    assert not plan_object("User", describe_of("User")).deletable


def test_missing_required_field_names_object_and_field():
    with pytest.raises(MissingFieldError, match=r"Opportunity lacks required field\(s\) StageName"):
        plan_object("Opportunity", describe_of("Opportunity", drop="StageName"))


def test_configured_extra_field_becomes_a_typed_column():
    d = describe_of("Opportunity", {"Tier__c": "picklist", "Seats__c": "double"})
    plan = plan_object("Opportunity", d, ["Tier__c", "Seats__c"])
    assert plan.fields[-2:] == ("Tier__c", "Seats__c")
    assert plan.columns[-2:] == ("tier_c", "seats_c")
    assert plan.arrow_schema.field("seats_c").type == pa.float64()


def test_extra_field_absent_from_describe_is_a_clear_error():
    with pytest.raises(MissingFieldError, match=r"Opportunity\.Nope__c does not exist"):
        plan_object("Opportunity", describe_of("Opportunity"), ["Nope__c"])


def test_compound_extra_field_is_refused():
    d = describe_of("Account", {"BillingAddress": "address"})
    with pytest.raises(MissingFieldError, match="compound type"):
        plan_object("Account", d, ["BillingAddress"])


def test_column_names_equal_dlt_default_naming():
    naming = NamingConvention()
    for obj in OBJECTS.values():
        assert naming.normalize_table_identifier(obj.name) == snake(obj.name)
        for f in obj.fields:
            assert naming.normalize_identifier(f.name) == snake(f.name), f.name


def test_arrow_type_mapping():
    assert arrow_type("int") == pa.int64()
    assert arrow_type("percent") == pa.float64()
    assert arrow_type("reference") == pa.string()
    assert arrow_type("somethingNew") == pa.string()
