"""Checksum and validity rules that turn a regex candidate into a finding.

Every function here is pure and total: it takes the candidate's characters and returns a bool
(never raises), so a detector can call it on any regex hit. A candidate that fails its rule is
not a finding: that is what keeps order numbers, timestamps and look-alikes out of the audit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Mapping
from types import MappingProxyType

# Lengths of the IBAN for each country that issues them (ISO 13616 registry, country code
# included). Anything not listed is not an IBAN.
IBAN_LENGTHS: Mapping[str, int] = MappingProxyType({
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
})  # fmt: skip

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when above 9
# A=10 ... Z=35, digits as they are: a table by code point (faster to look up than a dict).
_IBAN_VALUES = [
    str(c - 55) if 65 <= c <= 90 else chr(c) if 48 <= c <= 57 else None for c in range(128)
]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by every payment card network."""
    if digits.isascii() and digits.isdigit():  # the same sum, with fewer Python steps
        kept = (digits[-1::-2] + digits[-2::-2].translate(_DOUBLED)).encode("ascii")
        return (sum(kept) - 48 * len(kept)) % 10 == 0
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_lengths(digits: str) -> Container[int]:
    """The lengths a card number may have, given its first four digits (none: no network)."""
    if digits[0] == "4":  # Visa
        return (13, 16, 19)
    p2 = int(digits[:2])
    p4 = int(digits[:4])
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return (16,)
    if p2 in (34, 37):  # American Express
        return (15,)
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649:  # Discover
        return range(16, 20)
    if 3528 <= p4 <= 3589:  # JCB
        return range(16, 20)
    if 300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39):  # Diners Club
        return range(14, 20)
    if p2 == 62 or 2200 <= p4 <= 2204:  # UnionPay, Mir
        return range(16, 20)
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763):  # Maestro
        return range(13, 20)
    return ()


def iban_ok(compact: str) -> bool:
    """Country length table, then the ISO 7064 mod-97 check on the rearranged number."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    if compact.isascii() and (compact.isupper() or compact.isdigit()):
        return int(rearranged.translate(_IBAN_VALUES)) % 97 == 1
    remainder = 0
    for ch in rearranged:
        value = ord(ch) - 48 if ch <= "9" else ord(ch) - 55  # A=10 ... Z=35
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


def us_ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999; no group 00; no serial 0000."""
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


def uk_nino_ok(prefix: str) -> bool:
    """HMRC rules on the two prefix letters (the pattern already excludes D F I Q U V / O)."""
    return prefix.upper() not in _NINO_BAD_PREFIXES


def es_dni_ok(candidate: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): letter = n mod 23."""
    compact = candidate.replace("-", "").upper()
    number, letter = compact[:-1], compact[-1]
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == letter


def fr_insee_ok(candidate: str) -> bool:
    """French INSEE (NIR): 13 characters + 2-digit key = 97 - (number mod 97); Corsica 2A/2B."""
    compact = candidate.replace(" ", "").upper()
    body, key = compact[:13], compact[13:]
    corsica = {"2A": "19", "2B": "18"}.get(body[5:7])
    if corsica is not None:
        body = body[:5] + corsica + body[7:]
    if not (body.isdigit() and key.isdigit()):
        return False
    return 97 - int(body) % 97 == int(key)


def ipv4_ok(candidate: str) -> bool:
    """Four decimal octets of 0-255, no leading zeros (010 is ambiguous: octal or a version)."""
    for octet in candidate.split("."):
        if len(octet) > 1 and octet[0] == "0":
            return False
        if int(octet) > 255:
            return False
    return True


def ipv6_ok(candidate: str) -> bool:
    """A valid IPv6 address that contains a digit (so words like `dead::beef` stay prose)."""
    if not any(ch.isdigit() for ch in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True
