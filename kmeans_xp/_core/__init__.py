"""Standard-only primitives and passes (assign, segment sums, the certified assignment, bounds,
seeding pieces): the reference every backend is tested against. Imports only ``_lib``."""
