# services.spbot: the bot as a NixOS service, with the same sandbox as deploy/spbot.service.
#
#   imports = [ spbot.nixosModules.default ];
#   services.spbot = {
#     enable = true;
#     passwordFile = "/etc/secrets/spbot-password";
#     settings = {
#       homeserver = "https://matrix.example.org";
#       user_id = "@spbot:example.org";
#       admins = [ "@alice:example.org" "@bob:example.org" ];
#       rooms = [ "!AbCdEfGhIjKlMnOpQr:example.org" ];
#       backup.services.photos.paths = [ "/srv/photos" ];
#     };
#   };
#
# `settings` is rendered to TOML over ./defaults.nix; every key is documented in
# deploy/spbot.example.toml (`spbot config example`). The password reaches the bot as a systemd
# credential, never through the Nix store.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.spbot;
  toml = pkgs.formats.toml { };
  configFile = toml.generate "spbot.toml" (lib.recursiveUpdate (import ./defaults.nix) cfg.settings);
  # system-changing tools run outside the sandbox as transient units (see deploy/outside/run-outside)
  outsideBin = pkgs.runCommand "spbot-outside-bin" { } ''
    mkdir -p $out/bin
    install -m 0755 ${../outside/run-outside} $out/bin/run-outside
    for tool in nixos-rebuild nix-env nix-collect-garbage resize2fs xfs_growfs; do
      ln -s run-outside $out/bin/$tool
    done
  '';
in
{
  options.services.spbot = {
    enable = lib.mkEnableOption "spbot, a Matrix bot that runs this server from an encrypted room";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The spbot package.";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      description = "spbot.toml as Nix: every key of deploy/spbot.example.toml, sections as attribute sets.";
    };

    passwordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "A file holding the bot account's password (read once, to create its device).";
    };

    extraReadWritePaths = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "More paths the bot may write: data folders of backed-up services that restores write to.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [{
      assertion = cfg.passwordFile != null || cfg.settings ? access_token;
      message = "services.spbot: set passwordFile (or settings.access_token) so the bot can log in";
    }];

    systemd.services.spbot = {
      description = "spbot: run this server from an encrypted Matrix room";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # an upgrade must not restart the bot in the middle of it (it runs nixos-rebuild)
      restartIfChanged = false;
      path = [ outsideBin pkgs.restic pkgs.openssh pkgs.systemd pkgs.util-linux pkgs.coreutils
               config.nix.package config.system.build.nixos-rebuild ];
      environment = {
        HOME = "/root";
        NIX_PATH = lib.concatStringsSep ":" config.nix.nixPath;
      };
      serviceConfig = {
        Type = "simple";
        User = "root";
        ExecStart = "${lib.getExe cfg.package} run --config ${configFile}";
        LoadCredential = lib.optional (cfg.passwordFile != null) "password:${cfg.passwordFile}";
        StateDirectory = "spbot";
        StateDirectoryMode = "0700";
        CacheDirectory = "spbot";
        CacheDirectoryMode = "0700";
        WorkingDirectory = "/var/lib/spbot";
        UMask = "0077";
        Restart = "on-failure";
        RestartSec = 5;
        KillSignal = "SIGTERM";
        TimeoutStopSec = 30;

        # what the bot may write (each path: see deploy/spbot.service)
        ProtectSystem = "strict";
        ReadWritePaths = [ "-/root/.ssh" "-/var/lib" "-/srv" "-/var/vmail" "-/var/www" "-/var/log" "-/var/cache/apt" "-/old-root" ]
          ++ cfg.extraReadWritePaths;
        ProtectHome = "read-only";
        PrivateTmp = true;
        PrivateDevices = true;

        # what the bot may do
        NoNewPrivileges = true;
        CapabilityBoundingSet = [ "CAP_DAC_READ_SEARCH" "CAP_DAC_OVERRIDE" "CAP_CHOWN" "CAP_FOWNER" "CAP_FSETID"
                                  "CAP_SETUID" "CAP_SETGID" "CAP_KILL" "CAP_AUDIT_WRITE" ];
        AmbientCapabilities = "";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "all";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        SystemCallErrorNumber = "EPERM";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
        DevicePolicy = "closed";
        KeyringMode = "private";
        RemoveIPC = true;
      };
    };
  };
}
