"""Orders: placement, lifecycle, holds, edits, cancellations and the timeline."""
