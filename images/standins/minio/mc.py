#!/usr/bin/env python3
"""The part of MinIO's `mc` client that docker-compose.yaml uses, for the S3 stand-in.

    mc ready ALIAS                          exit 0 once the alias' server answers S3 requests
    mc alias set NAME URL ACCESS_KEY SECRET  remember an alias (in ~/.mc/config.json, as mc does)
    mc mb [--ignore-existing|-p] NAME/BUCKET ...   make buckets

The alias ``local`` is http://localhost:9000 until set otherwise, as in mc's default config.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONFIG = Path(os.environ.get("MC_CONFIG_DIR", Path.home() / ".mc")) / "config.json"
DEFAULT_ALIASES = {"local": {"url": "http://localhost:9000", "accessKey": "", "secretKey": ""}}


def _aliases() -> dict:
    if CONFIG.is_file():
        return json.loads(CONFIG.read_text()).get("aliases", {})
    return dict(DEFAULT_ALIASES)


def _client(alias: str):
    import boto3
    from botocore.config import Config

    aliases = _aliases()
    if alias not in aliases:
        raise SystemExit(f"mc: alias {alias!r} is not set (mc alias set {alias} URL USER PASSWORD)")
    entry = aliases[alias]
    return boto3.client(
        "s3",
        endpoint_url=entry["url"],
        aws_access_key_id=entry["accessKey"] or "minioadmin",
        aws_secret_access_key=entry["secretKey"] or "minioadmin",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=3),
    )


def ready(args: list[str]) -> int:
    if len(args) != 1:
        raise SystemExit("usage: mc ready ALIAS")
    try:
        _client(args[0]).list_buckets()
    except Exception as exc:
        print(f"mc: {args[0]} is not ready: {exc}", file=sys.stderr)
        return 1
    print(f"The cluster '{args[0]}' is ready")
    return 0


def alias(args: list[str]) -> int:
    if len(args) != 5 or args[0] != "set":
        raise SystemExit("usage: mc alias set NAME URL ACCESS_KEY SECRET_KEY")
    _, name, url, access, secret = args
    aliases = _aliases()
    aliases[name] = {"url": url, "accessKey": access, "secretKey": secret, "api": "s3v4", "path": "auto"}
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    CONFIG.write_text(json.dumps({"version": "10", "aliases": aliases}, indent=2))
    os.chmod(CONFIG, 0o600)
    print(f"Added `{name}` successfully.")
    return 0


def mb(args: list[str]) -> int:
    ignore = False
    targets = []
    for arg in args:
        if arg in ("--ignore-existing", "-p"):
            ignore = True
        elif arg.startswith("-"):
            raise SystemExit(f"mc mb: unsupported option {arg}")
        else:
            targets.append(arg)
    if not targets:
        raise SystemExit("usage: mc mb [--ignore-existing] ALIAS/BUCKET ...")
    from botocore.exceptions import ClientError

    for target in targets:
        name, _, bucket = target.partition("/")
        if not bucket or "/" in bucket:
            raise SystemExit(f"mc mb: {target!r} is not ALIAS/BUCKET")
        try:
            _client(name).create_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if ignore and code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                print(f"Bucket `{target}` already exists.")
                continue
            raise SystemExit(f"mc mb: {target}: {exc}") from exc
        print(f"Bucket created successfully `{target}`.")
    return 0


COMMANDS = {"ready": ready, "alias": alias, "mb": mb}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"mc stand-in: supports only {', '.join(COMMANDS)} (got {argv!r})")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
