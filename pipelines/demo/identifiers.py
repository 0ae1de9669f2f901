"""Synthetic but valid Chinese identifiers: resident ID numbers, unified social credit codes, mobiles.

- Resident ID numbers (GB 11643-1999): 6-digit region code, birth date YYYYMMDD, 3-digit sequence
  (odd for men, even for women) and an ISO 7064 MOD 11-2 check character (0-9 or X).
- Unified social credit codes (GB 32100-2015): registration authority, organisation category,
  6-digit region code, 9-character organisation code (GB 11714, with its own MOD 11 check) and a
  MOD 31 check character over the alphabet ``0-9A-Y`` without I, O, S, V, Z.
"""

from __future__ import annotations

import numpy as np

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def id_check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character of a 17-digit ID body."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def id_checks(bodies: np.ndarray) -> np.ndarray:
    """Vectorised :func:`id_check_char` over an array of 17-digit strings."""
    digits = np.frombuffer("".join(bodies).encode("ascii"), dtype=np.uint8).reshape(-1, 17) - 48
    return np.array(list(ID_CHECK))[(digits.astype(np.int64) @ ID_WEIGHTS) % 11]


def valid_id_number(number: str) -> bool:
    """Tell whether an 18-character ID number has a valid check character."""
    return len(number) == 18 and number[:17].isdigit() and id_check_char(number[:17]) == number[17]


def id_numbers(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Build ID numbers from region codes, birth dates (datetime64[D]) and 3-digit sequence numbers."""
    dates = np.char.replace(np.datetime_as_string(birth.astype("datetime64[D]")), "-", "")
    bodies = np.char.add(np.char.add(region.astype(str), dates), np.char.zfill(seq.astype(str), 3))
    return np.char.add(bodies, id_checks(bodies)).astype(object)


def _org_code_check(body8: str) -> str:
    total = sum(_gb11714_value(c) * w for c, w in zip(body8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def _gb11714_value(c: str) -> int:
    """Value of a character in GB 11714 (digits 0-9, letters A=10 ... Z=35)."""
    return int(c) if c.isdigit() else ord(c) - 55


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100 check character of the first 17 characters of a credit code."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def valid_credit_code(code: str) -> bool:
    """Tell whether an 18-character unified social credit code has valid check characters."""
    if len(code) != 18 or any(c not in USCC_ALPHABET for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17] and _org_code_check(code[8:16]) == code[16]


def credit_code(prefix2: str, region: str, org_body8: str) -> str:
    """Build a credit code from authority+category, region and an 8-digit organisation code body."""
    first17 = prefix2 + region + org_body8 + _org_code_check(org_body8)
    return first17 + uscc_check_char(first17)


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random mainland mobile numbers 1[3-9]x xxxx xxxx with real-looking prefixes."""
    prefixes = np.array(["134", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "182",
                         "183", "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153",
                         "177", "180", "181", "189", "199", "173", "191", "166", "176", "195"])
    head = prefixes[rng.integers(0, len(prefixes), n)]
    tail = np.char.zfill(rng.integers(0, 100_000_000, n).astype(str), 8)
    return np.char.add(head, tail).astype(object)
