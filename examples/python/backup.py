#!/usr/bin/env python3
"""Backs up a Redis server with Cellar, over gRPC, and follows the operation.

Registers the Redis server at the given URI as a Cellar database (or, when a
database with that name is already registered, points it at the URI), starts
an on-demand backup, prints each update of the operation until it is done,
then prints the finished backup.

Usage:
    backup.py [--addr HOST:PORT] [--redis-uri URI] [--name NAME]
              [--compression zstd|gzip|none] [--timeout SECONDS]

Environment: CELLAR_ADDR (default 127.0.0.1:50051) and REDIS_URI (default
redis://127.0.0.1:6379) give the defaults of --addr and --redis-uri.

Exit status: 0 when the backup succeeded and is READY; 1 when the operation
failed or was cancelled, or the backup is not READY; 2 when a call failed or
the server could not be reached.

Run generate.sh first: it generates the client code into cellar_pb/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED = HERE / "cellar_pb"
if not (GENERATED / "cellar" / "v1" / "backup_service_pb2_grpc.py").exists():
    sys.exit(f"backup.py: no generated client in {GENERATED}; run {HERE / 'generate.sh'} first")
sys.path.insert(0, str(GENERATED))

import grpc  # noqa: E402
from google.protobuf import duration_pb2, field_mask_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402

from cellar.v1 import (  # noqa: E402
    backup_pb2,
    backup_service_pb2,
    backup_service_pb2_grpc,
    common_pb2,
    database_pb2,
    database_pb2_grpc,
    operation_pb2,
    operation_pb2_grpc,
)

COMPRESSIONS = {
    "zstd": common_pb2.COMPRESSION_ZSTD,
    "gzip": common_pb2.COMPRESSION_GZIP,
    "none": common_pb2.COMPRESSION_NONE,
}


class CallFailed(Exception):
    """A gRPC call failed; the message says which and why."""


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def describe_rpc_error(error: grpc.RpcError) -> str:
    """The code and message of a failed call, with its google.rpc details."""
    lines = [f"{error.code().name}: {error.details()}"]
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                for violation in bad_request.field_violations:
                    lines.append(f"  invalid field {violation.field}: {violation.description}")
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                metadata = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
                lines.append(f"  reason {info.reason}" + (f" ({metadata})" if metadata else ""))
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                lines.append(f"  retry after {retry.retry_delay.ToTimedelta().total_seconds():g}s")
            else:
                lines.append(f"  detail {detail.type_url}")
    return "\n".join(lines)


def call(what: str, method, request, **kwargs):
    try:
        return method(request, **kwargs)
    except grpc.RpcError as error:
        raise CallFailed(f"{what} failed: {describe_rpc_error(error)}") from None


def register_database(databases, name: str, redis_uri: str) -> database_pb2.Database:
    """Registers the Redis server, or re-points the database already named `name`."""
    database = database_pb2.Database(name=name, engine=common_pb2.ENGINE_REDIS, connection_uri=redis_uri)
    try:
        created = databases.CreateDatabase(database_pb2.CreateDatabaseRequest(database=database), timeout=30)
        print(f"registered database {created.id} ({created.name}, {created.connection_uri})")
        return created
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise CallFailed(f"CreateDatabase failed: {describe_rpc_error(error)}") from None
    listed = call(
        "ListDatabases",
        databases.ListDatabases,
        database_pb2.ListDatabasesRequest(filter=f'name = "{name}"', page_size=1),
        timeout=30,
    )
    if not listed.databases:
        raise CallFailed(f"CreateDatabase said {name!r} exists, but ListDatabases does not find it")
    existing = listed.databases[0]
    if existing.engine != common_pb2.ENGINE_REDIS:
        engine = common_pb2.Engine.Name(existing.engine)
        raise CallFailed(f"database {name!r} is already registered with engine {engine}; pass another --name")
    updated = call(
        "UpdateDatabase",
        databases.UpdateDatabase,
        database_pb2.UpdateDatabaseRequest(
            database=database_pb2.Database(id=existing.id, connection_uri=redis_uri),
            update_mask=field_mask_pb2.FieldMask(paths=["connection_uri"]),
        ),
        timeout=30,
    )
    print(f"reusing database {updated.id} ({updated.name}, now {updated.connection_uri})")
    return updated


def print_operation(operation: operation_pb2.Operation, started: float) -> None:
    metadata = operation.metadata
    progress = metadata.progress
    state = operation_pb2.OperationState.Name(metadata.state)
    if progress.bytes_total:
        size = f"{progress.bytes_done}/{progress.bytes_total} bytes"
        size += f" ({human_bytes(progress.bytes_done)}/{human_bytes(progress.bytes_total)})"
    else:
        size = f"{progress.bytes_done}/? bytes ({human_bytes(progress.bytes_done)})"
    line = f"[{time.monotonic() - started:7.2f}s] {state:<27} phase={metadata.phase or '-':<13} {size} {progress.percent:5.1f}%"
    if progress.bytes_per_second:
        line += f" {human_bytes(progress.bytes_per_second)}/s"
    if progress.items_done or progress.items_total:
        line += f" {progress.items_done}/{progress.items_total or '?'} {progress.items_unit or 'items'}"
    if metadata.queue_position:
        line += f" queue_position={metadata.queue_position}"
    print(line, flush=True)
    for warning in metadata.warnings:
        print(f"    warning {warning.reason or warning.code}: {warning.message}", flush=True)


def follow(operations, name: str, deadline: float, started: float) -> operation_pb2.Operation:
    """Prints the operation's updates from WatchOperation until it is done.

    If the stream breaks before the end (a restarted proxy, say), goes on with
    WaitOperation until the operation is done or the deadline passes.
    """
    last = None
    try:
        stream = operations.WatchOperation(
            operation_pb2.WatchOperationRequest(name=name), timeout=max(1.0, deadline - time.monotonic())
        )
        for operation in stream:
            print_operation(operation, started)
            last = operation
            if operation.done:
                return operation
        print("WatchOperation ended before the operation was done; waiting with WaitOperation", flush=True)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise CallFailed(f"timed out waiting for {name}") from None
        if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED):
            raise CallFailed(f"WatchOperation failed: {describe_rpc_error(error)}") from None
        print(f"WatchOperation broke ({error.code().name}); waiting with WaitOperation", flush=True)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallFailed(f"timed out waiting for {name}")
        wait = min(remaining, 60.0)
        operation = call(
            "WaitOperation",
            operations.WaitOperation,
            operation_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=int(wait) or 1)),
            timeout=wait + 10,
        )
        if last is None or operation != last:
            print_operation(operation, started)
            last = operation
        if operation.done:
            return operation


def print_backup(backup: backup_pb2.Backup) -> None:
    fields = [
        ("id", backup.id),
        ("name", backup.name),
        ("state", backup_pb2.BackupState.Name(backup.state)),
        ("database", f"{backup.database_id} ({backup.instance_name})"),
        ("server_version", backup.server_version or "-"),
        ("format", backup.format),
        ("compression", common_pb2.Compression.Name(backup.compression)),
        ("size", f"{backup.size_bytes} bytes ({human_bytes(backup.size_bytes)})"),
        ("logical_size", f"{backup.logical_size_bytes} bytes ({human_bytes(backup.logical_size_bytes)})"),
        ("sha256", backup.sha256),
        ("uri", backup.uri),
        ("manifest_uri", backup.manifest_uri),
        ("created", backup.create_time.ToJsonString() if backup.HasField("create_time") else "-"),
        ("expires", backup.expire_time.ToJsonString() if backup.HasField("expire_time") else "never"),
    ]
    print("backup:")
    for key, value in fields:
        print(f"  {key + ':':<15} {value}")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.timeout
    with grpc.insecure_channel(args.addr) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            raise CallFailed(f"cannot reach Cellar at {args.addr} within {args.connect_timeout:g}s") from None
        databases = database_pb2_grpc.DatabaseServiceStub(channel)
        backups = backup_service_pb2_grpc.BackupServiceStub(channel)
        operations = operation_pb2_grpc.OperationServiceStub(channel)

        database = register_database(databases, args.name, args.redis_uri)

        operation = call(
            "CreateBackup",
            backups.CreateBackup,
            backup_service_pb2.CreateBackupRequest(
                database_id=database.id,
                compression=COMPRESSIONS[args.compression],
                labels={"created-by": "python-example"},
            ),
            timeout=30,
        )
        print(f"started {operation.name} (backup {operation.metadata.backup_id})", flush=True)

        operation = follow(operations, operation.name, deadline, started)
        state = operation_pb2.OperationState.Name(operation.metadata.state)
        print(f"operation {operation.name}: {state}")
        if operation.HasField("error"):
            error = operation.error
            print(f"error: code {error.code}, reason {error.reason or '-'}: {error.message}")
            for key, value in sorted(error.metadata.items()):
                print(f"  {key}: {value}")

        backup_id = operation.metadata.backup_id
        if not backup_id:
            print("the operation names no backup")
            return 1
        backup = call("GetBackup", backups.GetBackup, backup_service_pb2.GetBackupRequest(id=backup_id), timeout=30)
        print_backup(backup)

    if operation.metadata.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        return 1
    if backup.state != backup_pb2.BACKUP_STATE_READY:
        print(f"the operation succeeded but the backup is {backup_pb2.BackupState.Name(backup.state)}, not READY")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Back up a Redis server with Cellar and follow the operation.",
    )
    parser.add_argument(
        "--addr",
        default=os.environ.get("CELLAR_ADDR", "127.0.0.1:50051"),
        help="Cellar's gRPC address, HOST:PORT (env CELLAR_ADDR; default %(default)s)",
    )
    parser.add_argument(
        "--redis-uri",
        default=os.environ.get("REDIS_URI", "redis://127.0.0.1:6379"),
        help="the Redis server to back up, redis:// or rediss:// (env REDIS_URI; default %(default)s)",
    )
    parser.add_argument(
        "--name",
        default="example-redis",
        help="the database's name in Cellar; reused if already registered (default %(default)s)",
    )
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default="zstd", help="default %(default)s")
    parser.add_argument(
        "--timeout", type=float, default=600, help="give up after this many seconds (default %(default)s)"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=15, help="seconds to wait for Cellar to answer (default %(default)s)"
    )
    args = parser.parse_args()
    try:
        return run(args)
    except CallFailed as error:
        print(f"backup.py: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
