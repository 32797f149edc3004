# The settings the NixOS module renders into spbot.toml before the admin's own `services.spbot.settings`
# (a plain attribute set, no nixpkgs needed, so the tests can evaluate it with nix-instantiate).
{
  state_dir = "/var/lib/spbot";
  password = { file = "/run/credentials/spbot.service/password"; };
  device_name = "spbot";
  upgrade = {
    # the NixOS tools, found through the outside runner on the service's PATH
    nixos = { nixos_rebuild = "nixos-rebuild"; nix_env = "nix-env"; };
  };
  ssh = { authorized_keys = "/root/.ssh/authorized_keys"; };
}
