"""Password hashing (Argon2id) and the password rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from ordersmith.platform.errors import FieldError, ValidationFailedError

MINIMUM_LENGTH = 10
# OWASP's second Argon2id configuration (46 MiB, 1 pass, 1 lane): strong, and cheap
# enough that sign-up and sign-in stay well under a third of a second on 2 cores.
_HASHER = PasswordHash((Argon2Hasher(memory_cost=47_104, time_cost=1, parallelism=1),))

# Refusing the passwords at the top of every breach list stops the guesses attackers try first.
COMMON_PASSWORDS = frozenset(
    line.strip().lower()
    for line in (Path(__file__).parent / "common_passwords.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def password_problems(password: str, email: str) -> list[str]:
    """The password rules this password breaks, as messages; empty when it is acceptable."""
    problems = []
    if len(password) < MINIMUM_LENGTH:
        problems.append(f"must be at least {MINIMUM_LENGTH} characters long")
    if password.lower() in COMMON_PASSWORDS:
        problems.append("is one of the most common passwords; choose something less guessable")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 3 and local_part in password.lower():
        problems.append("must not contain your email address")
    return problems


def check_password(password: str, email: str, field: str = "password") -> None:
    """Raise 422 listing every rule the password breaks."""
    problems = password_problems(password, email)
    if problems:
        raise ValidationFailedError(
            "the password breaks "
            + ("a rule" if len(problems) == 1 else f"{len(problems)} rules")
            + "; see errors",
            errors=[FieldError(field, problem) for problem in problems],
        )


async def hash_password(password: str) -> str:
    """Argon2id hash, computed off the event loop."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password against a stored hash, off the event loop; False when there is none."""
    if password_hash is None:
        # Spend the same time as a real check so that timing does not reveal unknown accounts.
        await asyncio.to_thread(_HASHER.hash, password)
        return False
    return await asyncio.to_thread(_HASHER.verify, password, password_hash)
