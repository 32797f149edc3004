{
  description = "spbot: a Matrix bot that runs a family's self-hosted server from an encrypted room";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: { default = pkgs.callPackage ./package.nix { }; });
      nixosModules.default = { pkgs, ... }: {
        imports = [ ./module.nix ];
        services.spbot.package = self.packages.${pkgs.system}.default;
      };
    };
}
