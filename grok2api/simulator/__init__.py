"""A Grok web simulator: serves the grok.com / assets / accounts / livekit protocol on one port.

Run it with ``python -m grok2api.simulator`` (or ``grok2api simulate``); see docs/simulator.md.
Modules: :mod:`.server` (routes), :mod:`.scenarios` (chat streams), :mod:`.state` (accounts, quota,
assets), :mod:`.faults` (fault model and markers), :mod:`.media` (JPEG/PNG/MP4 bytes),
:mod:`.grpcweb` (gRPC-web framing, protobuf), :mod:`.imagine_ws` (imagine WebSocket),
:mod:`.control` (``/_sim/`` control API), :mod:`.cli` (command line).
"""
