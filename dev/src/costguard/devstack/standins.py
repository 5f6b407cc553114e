"""Stand-ins for the official base images, made from Debian's packages.

No image registry is reachable from the machines costguard is checked on, so the images
``deploy/Dockerfile``, the compose file and the manifests name (``python:3.11-slim-bookworm``,
``node:20-bookworm-slim``, ``postgres:15``, ``redis:7``) are built here under those names in
``localhost/``, where podman looks first. Each starts from a ``debootstrap --variant=minbase``
root file system of Debian bookworm (trixie for Node.js 20: bookworm's is 18) imported as
``localhost/costguard-e2e/debian:<suite>``; the Containerfiles are in ``deploy/e2e/standins``.
A second run finds the bases and podman's layer cache and takes seconds.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from costguard.devstack.containers import E2E_DIR, WORK_DIR, CommandFailed, run

SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


@dataclass(frozen=True)
class StandIn:
    image: str  # the official image's name, under localhost/
    containerfile: str


STAND_INS = (
    StandIn("localhost/python:3.11-slim-bookworm", "python.Containerfile"),
    StandIn("localhost/node:20-bookworm-slim", "node.Containerfile"),
    StandIn("localhost/postgres:15", "postgres.Containerfile"),
    StandIn("localhost/redis:7", "redis.Containerfile"),
)
SUITES = ("bookworm", "trixie")


def base_image(suite: str) -> str:
    return f"localhost/costguard-e2e/debian:{suite}"


def debian_mirror(sources: tuple[Path, ...] = SOURCES) -> str:
    """The Debian archive this machine's apt uses (never a host written here)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(source.glob("*.sources")) + sorted(source.glob("*.list"))
        elif source.is_file():
            files.append(source)
    for path in files:
        for line in path.read_text().splitlines():
            words = line.split()
            # deb822 ("URIs: http://...") and one-line ("deb [opts] http://... bookworm main").
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"]:
                uris = [w for w in words[1:] if "://" in w]
                if uris and "debian" in uris[0] and "security" not in uris[0]:
                    return uris[0]
    raise CommandFailed("no Debian mirror in /etc/apt/sources.list*: debootstrap needs one")


def host_ca_bundle() -> Path:
    """The host's trust store: the images trust what the host trusts (a re-signing proxy)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise CommandFailed("no CA bundle on this machine (install Debian's ca-certificates)")


async def make_base(suite: str, mirror: str) -> None:
    """``localhost/costguard-e2e/debian:<suite>``, unless it is already there."""
    image = base_image(suite)
    if (await run("podman", "image", "exists", image, check=False)).code == 0:
        return
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK_DIR, prefix=f"rootfs-{suite}-") as rootfs:
        await run("debootstrap", "--variant=minbase", suite, rootfs, mirror, timeout_s=600)
        tarball = Path(rootfs).with_suffix(".tar")
        try:
            await run("tar", "-C", rootfs, "-cf", tarball, ".")
            await run("podman", "import", "--quiet", tarball, image)
        finally:
            tarball.unlink(missing_ok=True)


async def make_stand_ins() -> None:
    """Build every stand-in, and its base when missing."""
    mirror = debian_mirror()
    for suite in SUITES:
        await make_base(suite, mirror)
    context = WORK_DIR / "standins"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(E2E_DIR / "standins", context)
    # The build context only: the host's certificates are never committed.
    shutil.copyfile(host_ca_bundle(), context / "ca-certificates.crt")
    for stand_in in STAND_INS:
        await run(
            "podman", "build", "--quiet", "--network", "host",
            "-f", context / stand_in.containerfile, "-t", stand_in.image, context,
            timeout_s=900,
        )  # fmt: skip
