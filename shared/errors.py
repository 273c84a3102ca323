"""Errors that reach the user as one clear line."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 1."""

    exit_code = 1


class ContractError(UserError):
    """A run or program file that cannot be read; the message names the file."""
