"""What to do with bad input: raise a clear error, or skip it, count it and report it."""
import collections
import logging
import warnings

logger = logging.getLogger("posefast.data")


def format_counts(skipped):
    """``"missing_image: 2, corrupt_image: 1"`` from ``{reason: count}`` (sorted by reason)."""
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))


class BadInputError(ValueError):
    """A dataset file or annotation is unusable. ``reason`` is a short machine-readable tag."""

    def __init__(self, message, reason="bad_input"):
        super().__init__(message)
        self.reason = reason


class BadInputPolicy:
    """Raises on bad input (default) or, with ``skip_bad=True``, counts it per reason.

    ``skipped`` is a ``{reason: count}`` dict; ``report()`` logs and warns once with the totals.
    """

    def __init__(self, skip_bad=False):
        self.skip_bad = skip_bad
        self.skipped = collections.Counter()
        self.examples = {}

    def bad(self, reason, message):
        """Handle one bad item: raise ``BadInputError`` or record it as skipped."""
        if not self.skip_bad:
            raise BadInputError(message, reason)
        self.skipped[reason] += 1
        self.examples.setdefault(reason, message)
        logger.debug("skipping bad input: %s", message)

    def merge(self, counts):
        """Add counts from an earlier run (e.g. stored with the cache)."""
        self.skipped.update(counts)

    def report(self, source):
        """Warn once with what was skipped while loading ``source`` (nothing if all was good)."""
        if not self.skipped:
            return
        parts = format_counts(self.skipped)
        examples = "; ".join(self.examples.values())
        message = f"{source}: skipped bad input ({parts})" + (f". e.g. {examples}" if examples else "")
        logger.info(message)  # the warning below is what a console shows: once, not twice
        warnings.warn(message, stacklevel=3)
