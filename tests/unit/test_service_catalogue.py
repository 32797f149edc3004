"""The service catalogue: every shipped definition validates, the distro variants and the config's
[services.<name>] overrides resolve as documented, and a bad table is refused in the admin's words."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from spbot.features.services.catalogue import CatalogueError, catalogue, read
from spbot.features.services.definition import Definition
from spbot.features.services.enabled import ServiceConfig, resolve
from spbot.features.services.settings import ServicesSettings

REQUIRED = {"synapse", "nextcloud", "gitea", "forgejo", "vaultwarden", "pleroma", "akkoma", "mail", "jitsi",
            "ocserv", "coturn", "certbot", "folder"}
CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "spbot/features/services/catalogue"


@pytest.mark.parametrize("path", sorted(CATALOGUE_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_definition_file_validates(path):
    spec = read(path.stem, path.read_text())
    assert spec.name == path.stem and spec.description
    for distro in ("debian", "nixos"):
        variant = spec.for_distro(distro)
        assert variant.generic or variant.units or variant.containers or variant.data_paths
        if variant.database and variant.database.kind == "sqlite":
            assert any(variant.database.path.is_relative_to(p) for p in variant.data_paths), \
                "a SQLite file lives in the service's data"


def test_the_catalogue_covers_the_family_services():
    assert REQUIRED <= set(catalogue())
    assert catalogue()["nextcloud"].health.url.endswith("/status.php")
    assert catalogue()["gitea"].health.url.endswith("/api/healthz")
    assert catalogue()["vaultwarden"].health.url.endswith("/alive")
    assert catalogue()["synapse"].health.url.endswith("/health")
    assert catalogue()["mail"].optional_units == ["rspamd.service", "opendkim.service", "redis-rspamd.service"]
    assert catalogue()["folder"].generic


def test_the_installed_package_ships_the_files():
    import tomllib
    declared = tomllib.loads((CATALOGUE_DIR.parents[3] / "pyproject.toml").read_text())
    assert declared["tool"]["setuptools"]["package-data"]["spbot.features.services.catalogue"] == ["*.toml"]
    assert len(catalogue()) == len(list(CATALOGUE_DIR.glob("*.toml")))


@pytest.mark.parametrize("text, problem", [
    ('description = "x"', "at least 3 characters"),
    ('description = "Thing"\nunits = ["bad;unit"]', "not a valid unit name"),
    ('description = "Thing"\nunits = ["a"]\n[health]\nurl = "http://example.org/"', "on this machine"),
    ('description = "Thing"\nunits = ["a"]\n[variants.arch]\nunits = ["b"]', "unknown distribution"),
    ('description = "Thing"', "needs units, containers"),
    ('description = "Thing"\nunits = ["a"]\n[database]\nkind = "sqlite"', "needs path"),
    ('description = "Thing"\nunits = ["a"]\nunknown = 1', "Extra inputs"),
])
def test_bad_definitions_are_refused(text, problem):
    with pytest.raises(CatalogueError, match=problem):
        read("thing", text)


def test_variants_replace_what_they_name(tmp_path):
    marker = tmp_path / "NIXOS"
    vault = resolve("vaultwarden", ServiceConfig(), nixos_marker=marker)
    assert vault.data_paths == [Path("/var/lib/vaultwarden")]
    marker.touch()
    vault = resolve("vaultwarden", ServiceConfig(), nixos_marker=marker)
    assert vault.data_paths == [Path("/var/lib/bitwarden_rs")]
    assert vault.database.path == Path("/var/lib/bitwarden_rs/db.sqlite3")
    assert resolve("mail", ServiceConfig(), nixos_marker=marker).units == ["postfix.service", "dovecot2.service"]
    assert resolve("mail", ServiceConfig(distro="debian"), nixos_marker=marker).units == \
        ["postfix.service", "dovecot.service"]


def test_overrides():
    photos = resolve("photos", ServiceConfig(definition="folder", data_paths=[Path("/srv/photos")],
                                             excludes=["*.tmp"]))
    assert photos.name == "photos" and photos.data_paths == [Path("/srv/photos")] and not photos.units
    synapse = resolve("synapse", ServiceConfig(containers=["synapse"], distro="debian",
                                               extra_paths=[Path("/srv/synapse")]))
    assert synapse.units == [] and synapse.containers == ["synapse"] and synapse.in_containers
    assert synapse.data_paths[-1] == Path("/srv/synapse")
    cloud = resolve("nextcloud", ServiceConfig(distro="nixos", units=["nginx", "phpfpm-nextcloud"],
                                               health_url="http://127.0.0.1:8080/status.php"))
    assert cloud.units == ["nginx.service", "phpfpm-nextcloud.service"] and cloud.optional_units == []
    assert cloud.health.url == "http://127.0.0.1:8080/status.php"
    assert cloud.health.expect_text == '"installed":true'       # kept from the catalogue


def test_services_section_keeps_its_units_and_takes_service_tables():
    settings = ServicesSettings.model_validate({"units": ["nginx"], "nextcloud": {},
                                                "photos": {"definition": "folder", "data_paths": ["/srv/p"]}})
    assert settings.units == ["nginx.service"]
    assert sorted(settings.enabled) == ["nextcloud", "photos"]
    assert ServicesSettings().enabled == {}


@pytest.mark.parametrize("section, problem", [
    ({"nextclod": {}}, r"\[services.nextclod\]: no such service in the catalogue; did you mean nextcloud\?"),
    ({"nextcloud": {"dat_paths": []}}, r"\[services.nextcloud\] dat_paths: Extra inputs"),
    ({"folder": {}}, r"\[services.folder\]: folder is a template: give its data_paths"),
    ({"gitea": {"data_paths": ["relative"]}}, r"\[services.gitea\] data_paths.0: .*absolute"),
    ({"unitz": ["nginx"]}, "Extra inputs are not permitted"),
])
def test_bad_service_tables(section, problem):
    with pytest.raises(ValidationError, match=problem):
        ServicesSettings.model_validate(section)


def test_definition_defaults():
    spec = Definition(name="x", description="a thing", units=["a"], optional_units=["b.timer"])
    assert spec.all_units == ["a.service", "b.timer"] and spec.journal_units == spec.all_units
    assert spec.restore_stops == ["a.service"] and not spec.in_containers
