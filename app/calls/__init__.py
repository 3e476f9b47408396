"""The call runtime: what every call kind is made of, and nothing of any one kind.

- `ports`: what the runtime needs from the outside (the PBX, the interaction store, the clock,
  the routing desk) as Protocols; `AriClient`, `Store` and `RoutingService` satisfy them and the
  unit tests use fakes.
- `events`: the events a call's task reads from its queue (ARI events, the desk's decisions,
  people's control requests) and the exceptions that unwind a call's script.
- `session`: one call driven by one task: its event queue, play, wait for keys, record, the
  write-behind of its interaction, and cleanup as an exit stack each leg pushes onto.
- `legs`: dial an agent, a number or an expert; ring several; the originate sequence once.
- `conversation`: the connected phase: bridge, hold, mute, keys, consult, conference and
  transfer state, owned in one place; a transfer comes back as a request.
- `line`: waiting in a queue for an agent, the offer (previewed first where the queue says so),
  the conversation and any transfers, with the waiting room (music, announcements, keys)
  supplied by the call kind.
- `offers`: offers previewed in a person's panel before any phone rings (experts' and queues'),
  with Accept, Reject and the offer's clock; one registry.
- `switchboard`: the ARI event router and the registry of live calls; each call kind registers
  its Stasis handler and its recovery, and reconnect hooks run in order.
- `recovery`: after a (re)connect, live channels are compared with open interactions and each
  call is handed back to its kind, closed, or followed to its end.
- `writer`: the one path by which interactions reach PostgreSQL: batched, in order, retried.
- `http`: call controls over HTTP.

The call kinds (app/inbound, app/callbacks, app/voicemail, app/dialer) are composed from these
parts; the runtime imports none of them (a test says so).
"""
