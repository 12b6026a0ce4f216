"""Positive and negative examples per built-in detector, shared by the detector, engine and
stream tests.

`POSITIVES`: (category, text, the exact substring the finding must cover).
`NEGATIVES`: (category, text) where that category must find nothing: invalid checksums,
wrong lengths and look-alikes (order numbers, versions, dates, prose).

Every card, IBAN and key below is a published test value or made up; none is real.
"""

from __future__ import annotations

PEM_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aNDT5ahTAhyMTLcJVAtEl6LExZDtQ9eAdTJ6SvCEldtBgMdcCdNoc/Oqd0Bxfxo\n"
    "-----END RSA PRIVATE KEY-----"
)
PEM_PKCS8 = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
)
PEM_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
PEM_PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0l3c0BCAC5\n-----END PGP PRIVATE KEY BLOCK-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB_PAT = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_FINE = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL"
OPENAI_KEY = "sk-proj-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3"
OPENAI_LEGACY = "sk-" + "T3BlbkFJ9x8Yy7Zz6Aa5Bb4Cc3Dd2Ee1Ff0Gg9Hh8"
SLACK_BOT = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = "xoxp-" + "123456789012-123456789012-123456789012-0123456789abcdef0123456789abcdef"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_STS_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
GOOGLE_KEY = "AIza" + "SyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"

POSITIVES: list[tuple[str, str, str]] = [
    # --- email
    ("email", "Contact jane.doe@example.com for details.", "jane.doe@example.com"),
    ("email", "a@b.co", "a@b.co"),
    ("email", "cc: JOHN_SMITH@Example.ORG!", "JOHN_SMITH@Example.ORG"),
    ("email", "x.y+tag@sub.example.co.uk.", "x.y+tag@sub.example.co.uk"),
    ("email", "<o'brien.p%ops@mail-1.example.io>", "brien.p%ops@mail-1.example.io"),
    ("email", "(mail me: first-last@example.travel)", "first-last@example.travel"),
    (
        "email",
        "to jane@mail.a-really-long-subdomain-label-that-goes-on.and-another-label.example.com",
        "jane@mail.a-really-long-subdomain-label-that-goes-on",
    ),
    # --- phone
    ("phone", "call +44 20 7946 0958 today", "+44 20 7946 0958"),
    ("phone", "tel: +1 (415) 555-2671.", "+1 (415) 555-2671"),
    ("phone", "+1-800-555-0199", "+1-800-555-0199"),
    ("phone", "US office (415) 555-2671", "(415) 555-2671"),
    ("phone", "dial 415-555-2671 now", "415-555-2671"),
    ("phone", "415.555.2671", "415.555.2671"),
    ("phone", "London 020 7946 0958", "020 7946 0958"),
    ("phone", "portable 06 12 34 56 78", "06 12 34 56 78"),
    ("phone", "+33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("phone", "+4915123456789", "+4915123456789"),
    # --- US social security number
    ("us_ssn", "SSN 123-45-6789 on file", "123-45-6789"),
    ("us_ssn", "ssn: 123 45 6789", "123 45 6789"),
    ("us_ssn", "Social Security Number: 123456789", "123456789"),
    ("us_ssn", "SSN#078051120", "078051120"),
    # --- UK national insurance number
    ("uk_nino", "NINO AB123456C", "AB123456C"),
    ("uk_nino", "NI number: AB 12 34 56 C.", "AB 12 34 56 C"),
    ("uk_nino", "ni ce123456a", "ce123456a"),
    # --- Spanish DNI / NIE
    ("es_dni", "DNI 12345678Z", "12345678Z"),
    ("es_dni", "dni: 12345678-Z", "12345678-Z"),
    ("es_dni", "87654321x", "87654321x"),
    ("es_dni", "NIE X1234567L", "X1234567L"),
    ("es_dni", "NIE Y-1234567-X", "Y-1234567-X"),
    ("es_dni", "NIE Z1234567R", "Z1234567R"),
    # --- French INSEE (NIR)
    ("fr_insee", "NIR 1 85 05 78 006 084 91", "1 85 05 78 006 084 91"),
    ("fr_insee", "185057800608491", "185057800608491"),
    ("fr_insee", "née en Corse: 2 85 05 2A 006 084 82", "2 85 05 2A 006 084 82"),
    ("fr_insee", "2 69 01 49 350 012 26", "2 69 01 49 350 012 26"),
    ("fr_insee", "n° 1 55 12 99 123 456 37", "1 55 12 99 123 456 37"),
    # --- payment cards (Luhn + network prefix and length)
    ("payment_card", "Visa 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("payment_card", "4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("payment_card", "card=4111111111111111;", "4111111111111111"),
    ("payment_card", "Visa 4012888888881881", "4012888888881881"),
    ("payment_card", "old Visa 4222222222222", "4222222222222"),
    ("payment_card", "MC 5555 5555 5555 4444", "5555 5555 5555 4444"),
    ("payment_card", "MC 5105-1051-0510-5100", "5105-1051-0510-5100"),
    ("payment_card", "MC 2-series 2223 0031 2200 3222", "2223 0031 2200 3222"),
    ("payment_card", "Amex 378282246310005", "378282246310005"),
    ("payment_card", "Amex 3782 822463 10005", "3782 822463 10005"),
    ("payment_card", "Amex 3714-496353-98431", "3714-496353-98431"),
    ("payment_card", "Discover 6011 1111 1111 1117", "6011 1111 1111 1117"),
    ("payment_card", "JCB 3530 1113 3330 0000", "3530 1113 3330 0000"),
    ("payment_card", "Diners 30569309025904", "30569309025904"),
    ("payment_card", "qty 2 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("payment_card", "order #4111111111111111", "4111111111111111"),
    ("payment_card", "ref 4111111111111111.", "4111111111111111"),
    ("payment_card", "4111 1111 1111 1111-2024", "4111 1111 1111 1111"),
    ("payment_card", "4000 0566 5566 5556", "4000 0566 5566 5556"),
    # --- IBAN (country length + mod 97)
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00"),
    ("iban", "DE89370400440532013000", "DE89370400440532013000"),
    ("iban", "GB29 NWBK 6016 1331 9268 19", "GB29 NWBK 6016 1331 9268 19"),
    ("iban", "to GB29NWBK60161331926819.", "GB29NWBK60161331926819"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "FR1420041010050500013M02606", "FR1420041010050500013M02606"),
    ("iban", "NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00"),
    ("iban", "(NL91ABNA0417164300)", "NL91ABNA0417164300"),
    ("iban", "ES91 2100 0418 4502 0005 1332", "ES91 2100 0418 4502 0005 1332"),
    ("iban", "IT60 X054 2811 1010 0000 0123 456", "IT60 X054 2811 1010 0000 0123 456"),
    ("iban", "BE68 5390 0754 7034", "BE68 5390 0754 7034"),
    ("iban", "CH93 0076 2011 6238 5295 7", "CH93 0076 2011 6238 5295 7"),
    ("iban", "NO93 8601 1117 947", "NO93 8601 1117 947"),
    ("iban", "IBAN:DE89370400440532013000", "DE89370400440532013000"),
    ("iban", "GB29 NWBK 6016 1331 9268 19 12 EUR", "GB29 NWBK 6016 1331 9268 19"),
    ("iban", "ID12 DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    # --- IP addresses
    ("ip_address", "server 192.168.1.10 is down", "192.168.1.10"),
    ("ip_address", "10.0.0.1", "10.0.0.1"),
    ("ip_address", "255.255.255.255", "255.255.255.255"),
    ("ip_address", "bind 0.0.0.0:8080", "0.0.0.0"),
    ("ip_address", "http://10.1.2.3/path", "10.1.2.3"),
    ("ip_address", "end of sentence 8.8.8.8.", "8.8.8.8"),
    ("ip_address", "host 2001:db8::1 is up", "2001:db8::1"),
    (
        "ip_address",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ),
    ("ip_address", "localhost ::1", "::1"),
    ("ip_address", "fe80::1%eth0", "fe80::1"),
    ("ip_address", "[2001:db8::1]:443", "2001:db8::1"),
    ("ip_address", "mapped ::ffff:192.168.1.1", "::ffff:192.168.1.1"),
    # --- credentials
    ("credential", f"aws_access_key_id {AWS_KEY_ID}", AWS_KEY_ID),
    ("credential", f"{AWS_STS_ID},", AWS_STS_ID),
    ("credential", f"maps key {GOOGLE_KEY}", GOOGLE_KEY),
    ("credential", f"token {GITHUB_PAT}", GITHUB_PAT),
    ("credential", f"GH_TOKEN={GITHUB_FINE}", GITHUB_FINE),
    ("credential", f"export OPENAI_API_KEY={OPENAI_KEY}", OPENAI_KEY),
    ("credential", f"key: {OPENAI_LEGACY}", OPENAI_LEGACY),
    ("credential", f"slack {SLACK_BOT}", SLACK_BOT),
    ("credential", f"{SLACK_USER}", SLACK_USER),
    ("credential", f"stripe {STRIPE}", STRIPE),
    ("credential", "Authorization: Bearer abcdef1234567890ABCDEF", "abcdef1234567890ABCDEF"),
    ("credential", f"Authorization: Bearer {JWT}", JWT),
    ("credential", f"id_token {JWT}", JWT),
    ("credential", "password=hunter2xyz", "hunter2xyz"),
    ("credential", 'password = "correct horse battery"', "correct horse battery"),
    ("credential", "PASSWORD: 's3cr3t!'", "s3cr3t!"),
    ("credential", "password: hunter22", "hunter22"),
    ("credential", "db_password=Pa55word", "Pa55word"),
    ("credential", '{"password": "hunter2", "user": "bob"}', "hunter2"),
    ("credential", "client_secret: 8f9a0b1c2d3e", "8f9a0b1c2d3e"),
    ("credential", 'api_key="abcd"', "abcd"),
    # --- private keys
    ("private_key", f"here: {PEM_RSA} done", PEM_RSA),
    ("private_key", PEM_PKCS8, PEM_PKCS8),
    ("private_key", f"{PEM_OPENSSH}\nafter", PEM_OPENSSH),
    ("private_key", PEM_PGP, PEM_PGP),
    (
        "private_key",
        "truncated: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg",
    ),
    # --- medical record numbers (only with their label)
    ("mrn", "MRN: 1234567", "1234567"),
    ("mrn", "mrn 00123456", "00123456"),
    ("mrn", "medical record number 00123456", "00123456"),
    ("mrn", "Medical Record No. 5551234", "5551234"),
    ("mrn", "Patient ID A123456", "A123456"),
    ("mrn", "patient id is 12345678", "12345678"),
    ("mrn", "MRN#AB-1234567", "AB-1234567"),
]

NEGATIVES: list[tuple[str, str]] = [
    # --- email
    ("email", "user@localhost"),
    ("email", "user@example"),
    ("email", "user@-example.com"),
    ("email", "user@example..com"),
    ("email", "foo@@example.com"),
    ("email", "@example.com"),
    ("email", "decorator @property and @dataclass(frozen=True)"),
    ("email", "price 5@10.00"),
    # --- phone
    ("phone", "order 4155552671"),
    ("phone", "2023-01-15"),
    ("phone", "12/31/2024"),
    ("phone", "31.12.2024"),
    ("phone", "version 1.2.3"),
    ("phone", "123-45-6789"),
    ("phone", "+12 3"),
    ("phone", "(115) 555-2671"),
    ("phone", "IBAN DE89 3704 0044 0532 0130 00"),
    ("phone", "NL91 ABNA 0417 1643 00"),
    ("phone", "1 85 05 78 006 084 91"),
    ("phone", "insee-like 1 85 05 78 006 084 84"),
    ("phone", "4000 0566 5566 5557"),
    # --- US SSN
    ("us_ssn", "000-12-3456"),
    ("us_ssn", "666-12-3456"),
    ("us_ssn", "900-12-3456"),
    ("us_ssn", "123-00-4567"),
    ("us_ssn", "123-45-0000"),
    ("us_ssn", "123-45-67890"),
    ("us_ssn", "123-45 6789"),
    ("us_ssn", "order 123456789"),
    # --- UK NINO
    ("uk_nino", "QQ123456C"),
    ("uk_nino", "BG123456A"),
    ("uk_nino", "GB123456A"),
    ("uk_nino", "NK123456A"),
    ("uk_nino", "DA123456A"),
    ("uk_nino", "AB123456E"),
    ("uk_nino", "XAB123456C"),
    ("uk_nino", "AB1234567C"),
    # --- Spanish DNI / NIE
    ("es_dni", "12345678A"),
    ("es_dni", "X1234567A"),
    ("es_dni", "1234567Z"),
    ("es_dni", "A12345678Z"),
    ("es_dni", "123456789Z"),
    # --- French INSEE
    ("fr_insee", "1 85 05 78 006 084 84"),
    ("fr_insee", "185057800608490"),
    ("fr_insee", "3 85 05 78 006 084 91"),
    ("fr_insee", "1 85 13 78 006 084 91"),
    ("fr_insee", "2 85 05 2A 006 084 12"),
    # --- payment cards
    ("payment_card", "4111 1111 1111 1112"),
    ("payment_card", "4111111111111121"),
    ("payment_card", "1234 5678 9012 3456"),
    ("payment_card", "order 411111111111"),
    ("payment_card", "order 41111111111111111111"),
    ("payment_card", "4111 1111 1111 1111 1111"),
    ("payment_card", "1234 4111 1111 1111 1111"),
    ("payment_card", "4111 1111 1111 1111 111"),
    ("payment_card", "4111 1111-1111 1111"),
    ("payment_card", "4111  1111 1111 1111"),
    ("payment_card", "41 11 11 11 11 11 11 11"),
    ("payment_card", "3.4111111111111111"),
    ("payment_card", "1,4111111111111111"),
    ("payment_card", "tracking 1Z999AA10123456784"),
    ("payment_card", "order 9111111111111111"),
    ("payment_card", "378282246310006"),
    ("payment_card", "timestamp 1700000000000"),
    ("payment_card", "Luhn-valid but no network 1000000000000008"),
    # --- IBAN
    ("iban", "DE89370400440532013001"),
    ("iban", "DE89 3704 0044 0532 0130 01"),
    ("iban", "DE8937040044053201300"),
    ("iban", "DE893704004405320130001"),
    ("iban", "GB29NWBK6016133192681"),
    ("iban", "XX89370400440532013000"),
    ("iban", "de89370400440532013000"),
    ("iban", "ADE89370400440532013000"),
    ("iban", "DE89370400440532013000X"),
    ("iban", "DE89  3704 0044 0532 0130 00"),
    ("iban", "GB82 WEST 1234 5698 7654 33"),
    # --- IP addresses
    ("ip_address", "version 1.2.3"),
    ("ip_address", "999.1.1.1"),
    ("ip_address", "256.1.1.1"),
    ("ip_address", "1.2.3.4.5"),
    ("ip_address", "192.168.01.1"),
    ("ip_address", "v1.2.3.4"),
    ("ip_address", "1.2.3.4a"),
    ("ip_address", "python 3.12.1"),
    ("ip_address", "see 3.14.15.92.65"),
    ("ip_address", "dead::beef"),
    ("ip_address", "12:30:45"),
    ("ip_address", "time 12:30"),
    ("ip_address", "a::b"),
    ("ip_address", "1:2:3:4:5:6:7:8:9"),
    ("ip_address", "std::vector<int>"),
    # --- credentials
    ("credential", "AKIAIOSFODNN7EXAMPL"),
    ("credential", "AKIAIOSFODNN7EXAMPLEX"),
    ("credential", "XAKIAIOSFODNN7EXAMPLE"),
    ("credential", "ghp_123"),
    ("credential", "sk-abcdefghijklmnopqrstuvwxyz"),
    ("credential", "risk-assessment-and-mitigation-plan"),
    ("credential", "task-abcdefghijklmnopqrstu1"),
    ("credential", "the password is secret"),
    ("credential", "password: whatever"),
    ("credential", "passwordless login"),
    ("credential", "api_key: abc"),
    ("credential", 'password = "abc"'),
    ("credential", "Bearer with you"),
    ("credential", "the bearer of bad news"),
    ("credential", "token budget is 4096"),
    ("credential", "eyJhbGci"),
    ("credential", "xoxb-123"),
    # --- private keys
    ("private_key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----"),
    ("private_key", "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+g\n-----END CERTIFICATE-----"),
    ("private_key", "the private key is on the HSM"),
    ("private_key", "BEGIN RSA PRIVATE KEY"),
    # --- MRN: never without its label
    ("mrn", "order 1234567"),
    ("mrn", "1234567"),
    ("mrn", "MRN: 123"),
    ("mrn", "the mrn was lost"),
    ("mrn", "patient 1234567"),
    ("mrn", "MRN: 1234567890123"),
]
