"""The simulator (#14): the worst day of a passenger-service centre, run many times over the
real engine, each run from one seed.

A scenario (:mod:`incident.sim.scenario`) is a seeded schedule of events: live incidents and
drills declared from the shipped playbooks, several workers claiming at once, workers killed
mid-send, frozen past their lease or stalled mid-job, the database taken away, receivers that
are slow, throttle, fail or hang (:mod:`incident.sim.gateway`), acknowledgements and declines
racing escalation deadlines, facts changed, incidents resolved, the clock jumping. It runs on
a real database with real Workers and the real Sender (:mod:`incident.sim.runner`), time on a
frozen clock, then settles and checks the invariants (:mod:`incident.sim.invariants`).

``python -m incident.sim --seeds 1000`` runs many; ``--seed N -v`` replays one.
"""
