"""Rule expressions written without regular expressions / calendar conversions give exactly the
answers of the straightforward forms they replace, on adversarial inputs.

- the email shape: `email_shape_ok` against RE2's regexp_full_match of the documented pattern;
- the UTC wall time of a parsed occurred_at: make_timestamp(epoch_us(x)) against
  timezone('UTC', x).
"""

import random

import duckdb
import pytest

from assets.marketing.validate import _EMAIL_SHAPE, email_shape_ok

# Characters that matter to the pattern [^@\s]+@[^@\s]+\.[^@\s]+ : the separators, every
# character RE2's \s covers, characters it does not cover (vertical tab, no-break space,
# em space), letters and a non-ASCII letter.
ALPHABET = ["@", ".", " ", "\t", "\n", "\f", "\r", "\x0b", "\u00a0", "\u2003", "a", "b", "é", "_"]
CURATED = [
    "a@b.c",
    "ann.lee@example.com",
    "@b.c",
    "a@.c",
    "a@b.",
    "a@bc",
    "a@b.c.",
    "a.b@c",
    "a@@b.c",
    "a@b@c.d",
    "a@b..c",
    "a@.b.c",
    "a b@c.d",
    "a@b.c d",
    "a\t@b.c",
    "a@b.c\n",
    "a\x0b@b.c",
    "a\u00a0b@c.d",
    "é@é.é",
    "a@b.c@",
    ".@..",
    "a@..",
    "a@b",
    "",
    "@",
    ".",
]


def _random_strings(n: int) -> list[str]:
    """Half free-form strings, half `x@y.z` shapes with a character inserted at random."""
    rng = random.Random(7)

    def part() -> str:
        return "".join(rng.choice("ab.é_") for _ in range(rng.randint(0, 3)))

    out = []
    for i in range(n):
        if i % 2:
            out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 9))))
            continue
        text = part() + "@" + part() + "." + part()
        at = rng.randint(0, len(text))
        out.append(text[:at] + rng.choice(ALPHABET) + text[at:])
    return out


def test_email_shape_without_regex_equals_the_regex() -> None:
    values = CURATED + _random_strings(60_000)
    with duckdb.connect() as con:
        con.execute("CREATE TABLE v AS SELECT unnest(?::VARCHAR[]) AS email", [values])
        rows = con.execute(
            f"SELECT email, regexp_full_match(email, ?), {email_shape_ok('email')} FROM v",
            [_EMAIL_SHAPE],
        ).fetchall()
    mismatches = [(email, regex, ours) for email, regex, ours in rows if regex != ours]
    assert mismatches == []
    # the sample exercises both answers, with and without the characters that matter
    valid = {email for email, regex, _ in rows if regex}
    assert {"a@b.c", "é@é.é", "a@b..c", "a\u00a0b@c.d"} <= valid
    assert any(ch in email for email in valid for ch in ("\x0b", "\u00a0", "\u2003"))
    n_valid = sum(1 for _, regex, _ in rows if regex)
    assert 1_000 < n_valid < len(rows) - 1_000


@pytest.mark.parametrize("seed", [1, 2])
def test_utc_wall_time_from_epoch_equals_timezone_utc(seed: int) -> None:
    rng = random.Random(seed)
    texts = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "1970-01-01T00:00:00+14:00"]
    for _ in range(20_000):
        sign = rng.choice("+-")
        texts.append(
            f"{rng.randint(1, 9999):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
            f"{rng.randint(0, 999_999):06d}"
            + rng.choice(["Z", f"{sign}{rng.randint(0, 14):02d}:{rng.choice([0, 30, 45]):02d}"])
        )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE v AS SELECT unnest(?::VARCHAR[]) AS t", [texts])
        (parsed, differ) = con.execute(
            "SELECT count(x), count(*) FILTER (WHERE make_timestamp(epoch_us(x)) "
            "IS DISTINCT FROM timezone('UTC', x)) "
            "FROM (SELECT try_cast(t AS TIMESTAMPTZ) AS x FROM v)"
        ).fetchone()
    assert parsed > 19_000  # almost every value parses (far-past offsets may not)
    assert differ == 0
