"""docker-compose.yml cannot be run here (no Docker engine); check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_describes_the_deployment() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "mailbot", "web"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert services["mailbot"]["command"] == ["run"]
    assert set(compose["volumes"]) == {"pg-data", "mailbot-data"}
    for name in ("mailbot", "web"):
        env = services[name]["environment"]
        assert env["MAILBOT_DATABASE__URL"].startswith("postgresql+psycopg://")
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./") and not source.startswith("./deploy/"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert (ROOT / "Dockerfile").is_file()
    assert (ROOT / "deploy.env.example").is_file()
