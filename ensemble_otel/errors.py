"""Errors that name the field (or variable), the value and the rule."""

from __future__ import annotations


class FieldError(ValueError):
    """A value broke a rule. ``field``, ``value`` and ``rule`` say which, what and why."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"{field}={value!r}: {rule}")


class ConfigError(FieldError):
    """A setting (argument or environment variable) has a bad value, or configure() conflicts."""

    @property
    def source(self) -> str:
        return self.field


class BarError(FieldError):
    """A bar given to ``maybe_emit`` has a bad field; nothing was recorded."""


class EventError(FieldError):
    """An event passed to ``emit`` has a bad field; nothing was written."""


class UnsafePathError(OSError):
    """A path under the root was refused: a symbolic link, another user's file or directory,
    or not a regular file. ``filename`` is the path, ``strerror`` the reason."""

    def __init__(self, path: object, reason: str, errno_: int = 0) -> None:
        super().__init__(errno_, reason, str(path))

    def __str__(self) -> str:
        return f"refused {self.filename}: {self.strerror}"

    def __reduce__(self) -> tuple[type[UnsafePathError], tuple[object, str, int]]:
        return type(self), (self.filename, self.strerror, self.errno)
