"""Events to other systems: the outbox (written in the booking record's transaction), the feed it serves, and the
webhook relay that pushes it (docs/events.md).

- `events_for(previous, current)`: the events a change of a checkout's view makes (model.py).
- `append(db, events)`: write them in the caller's transaction, with ids in commit order; `append_with`: the
  caller's last write and the events in one statement; `append_if_changed`: a write that may find nothing to do
  and the events only if it wrote, one statement that commits alone (outbox.py).
- `read_after(engine, after, limit)`: the feed's page (outbox.py).
- `Deliveries`: webhook delivery state shared by relays (deliveries.py); `Relay`: the sender (relay.py).

Nothing here imports workflows/ or api/: views are JSON dicts.
"""

from services.events.model import Event, EventType, events_for
from services.events.outbox import append, append_if_changed, append_with, read_after

__all__ = ["Event", "EventType", "append", "append_if_changed", "append_with", "events_for", "read_after"]
