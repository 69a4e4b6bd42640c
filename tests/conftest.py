"""Root test configuration. Fixtures live in ``tests/fixtures/`` modules, one per concern."""

pytest_plugins = [
    "fixtures.services",
    "fixtures.simulator",
    "fixtures.secrets_scan",
    "fixtures.ray_serve",
]
