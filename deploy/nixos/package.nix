# spbot as a Python application from this checkout, with its runtime dependencies from nixpkgs.
{ lib, python3Packages }:

python3Packages.buildPythonApplication {
  pname = "spbot";
  version = "0.1.0";
  pyproject = true;
  src = lib.cleanSource ../..;   # the whole checkout (the flake in deploy/nixos sees it)

  build-system = [ python3Packages.setuptools ];
  dependencies = with python3Packages; [
    matrix-nio
    apscheduler
    httpx
    pydantic
    pydantic-settings
    aiosqlite
    psutil
    hcloud
    b2sdk
    pynacl
    canonicaljson
  ] ++ matrix-nio.optional-dependencies.e2e;

  # the suite needs a homeserver and network-free services of its own: run it with deploy/test
  doCheck = false;
  pythonImportsCheck = [ "spbot" "spbot.commands" "spbot.providers" ];

  meta = {
    description = "A Matrix bot that runs a family's self-hosted server from an end-to-end encrypted room";
    mainProgram = "spbot";
  };
}
