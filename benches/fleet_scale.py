#!/usr/bin/env python3
"""Helpers of benches/fleet_scale.sh (run by it, not on their own).

  measure OUT.json CMD...     runs CMD (stdout and stderr inherited) and writes its wall time,
                              user/sys CPU, peak RSS and I/O counters to OUT.json. The I/O
                              counters are this process's /proc/self/io after reaping CMD
                              minus before: Linux adds a reaped child's counters (and its
                              reaped children's) to the parent's, so `rchar` is every byte
                              CMD's read()/pread() calls returned (files, pipes, /proc; not
                              recv() on sockets) and `read_bytes` what it made the block
                              layer fetch (0 when the page cache holds the files).
  proxy PORTFILE TO_PORT COUNTS.json
                              a TCP proxy on a free loopback port (written to PORTFILE) to
                              127.0.0.1:TO_PORT (TCP_NODELAY both ways) that counts the bytes
                              each way and the HTTP/1.1 request lines sent; COUNTS.json is
                              rewritten after every connection closes.
  upload ENDPOINT BUCKET PREFIX DIR
                              uploads every file below DIR to s3://BUCKET/PREFIX/ (boto3, 8
                              threads; credentials from the AWS_* environment).
  s3s-etags ROOT BUCKET PREFIX DIR
                              for s3s-fs serving DIR as s3://BUCKET/PREFIX/ from ROOT: writes
                              each file's ETag (its MD5) where s3s-fs looks for it,
                              ROOT/.bucket-B64(BUCKET).object-B64(KEY).internal.json (URL-safe
                              base64, no padding). Without it s3s-fs hashes the whole file on
                              every GET and HEAD, ranged or not. A file whose size and mtime
                              match its record is not hashed again. Prints "FILES BYTES HASHED".
  compare LOCAL.json OTHER.json
                              prints what differs between two fleet JSON files, key by key.
  brief METRICS.json          one line of a measure's metrics.
  summary WORKDIR             prints the summary table from WORKDIR/*.metrics.json and
                              WORKDIR/facts.json.
"""
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time


def io_counters():
    out = {}
    with open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


def measure(out, cmd):
    before = io_counters()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.call(cmd)
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = io_counters()
    m = {
        "cmd": cmd,
        "rc": rc,
        "wall_s": wall,
        "user_s": ru.ru_utime - ru0.ru_utime,
        "sys_s": ru.ru_stime - ru0.ru_stime,
        # ru_maxrss of RUSAGE_CHILDREN: the largest peak RSS of any reaped child (KiB).
        "peak_rss_kib": ru.ru_maxrss,
        "rchar": after["rchar"] - before["rchar"],
        "read_bytes": after["read_bytes"] - before["read_bytes"],
    }
    with open(out, "w") as f:
        json.dump(m, f, indent=1)
    sys.exit(rc)


def proxy(portfile, to_port, counts_path):
    lock = threading.Lock()
    counts = {"to_server": 0, "from_server": 0, "connections": 0, "requests": 0}

    def save():
        tmp = counts_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(counts, f)
        os.replace(tmp, counts_path)

    def pump(src, dst, key):
        try:
            while True:
                data = src.recv(1 << 18)
                if not data:
                    break
                # ACK at once (Linux resets this after a while): a sender with Nagle on
                # (s3s-fs does not set TCP_NODELAY) would otherwise hold its next piece
                # until our delayed ACK.
                src.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                dst.sendall(data)
                with lock:
                    counts[key] += len(data)
                    if key == "to_server":
                        # request lines (one may straddle two reads: rare, undercounted)
                        counts["requests"] += data.count(b" HTTP/1.1\r\n")
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve(client):
        server = socket.create_connection(("127.0.0.1", to_port))
        # Forward each read at once: with Nagle, a response the server wrote in two pieces
        # (headers, then body) on a kept-alive connection (s3s-fs; moto closes each one)
        # waits for the client's delayed ACK, tens of ms per request.
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        a = threading.Thread(target=pump, args=(client, server, "to_server"), daemon=True)
        b = threading.Thread(target=pump, args=(server, client, "from_server"), daemon=True)
        a.start()
        b.start()
        a.join()
        b.join()
        client.close()
        server.close()
        with lock:
            counts["connections"] += 1
            save()

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(256)
    save()
    with open(portfile + ".tmp", "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.replace(portfile + ".tmp", portfile)
    while True:
        c, _ = lsock.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def upload(endpoint, bucket, prefix, root):
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(max_pool_connections=16))
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files.append((p, f"{prefix}/{os.path.relpath(p, root)}"))
    files.sort()

    def put(item):
        p, key = item
        with open(p, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f.read())
        return os.path.getsize(p)

    with ThreadPoolExecutor(8) as ex:
        total = sum(ex.map(put, files))
    print(f"{len(files)} {total}")


def s3s_etags(root, bucket, prefix, top):
    import base64
    import hashlib

    def b64(x):
        return base64.urlsafe_b64encode(x.encode()).decode().rstrip("=")

    files = total = hashed = 0
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            st = os.stat(p)
            key = f"{prefix}/{os.path.relpath(p, top)}"
            side = os.path.join(root, f".bucket-{b64(bucket)}.object-{b64(key)}.internal.json")
            files += 1
            total += st.st_size
            try:
                old = json.load(open(side))
                if old.get("leakscope_size") == st.st_size and \
                        old.get("leakscope_mtime_ns") == st.st_mtime_ns:
                    continue
            except (OSError, ValueError):
                pass
            h = hashlib.md5()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            # s3s-fs reads "e_tag" (and checksum_* keys); it ignores the others.
            rec = {"e_tag": h.hexdigest(), "leakscope_size": st.st_size,
                   "leakscope_mtime_ns": st.st_mtime_ns}
            with open(side + ".tmp", "w") as f:
                json.dump(rec, f)
            os.replace(side + ".tmp", side)
            hashed += 1
    print(f"{files} {total} {hashed}")


def compare(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    diffs = []

    def walk(x, y, path):
        if type(x) is not type(y):
            diffs.append((path, x, y))
        elif isinstance(x, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}")
        elif isinstance(x, list):
            if len(x) != len(y):
                diffs.append((path + "[len]", len(x), len(y)))
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{path}[{i}]")
        elif x != y:
            diffs.append((path, x, y))

    walk(a, b, "$")
    if not diffs:
        print("identical JSON values")
    for p, x, y in diffs[:20]:
        print(f"{p}: {json.dumps(x)[:80]} vs {json.dumps(y)[:80]}")
    if len(diffs) > 20:
        print(f"... {len(diffs) - 20} more")


def summary(workdir):
    def load(name):
        p = os.path.join(workdir, name)
        return json.load(open(p)) if os.path.exists(p) else None

    f = load("facts.json")
    rows, caps, ex = f["rows"], f["captures"], f["executors"]
    mib = 1 << 20
    print()
    print(f"fleet: {caps} captures x {f['profiles']} profiles x {f['stacks']} stacks = "
          f"{rows:,} sample rows, {f['fleet_bytes'] / mib:.0f} MiB on disk "
          f"({f['samples_bytes'] / mib:.0f} MiB of it samples/*.parquet); --jobs {f['jobs']}; "
          f"{f['machine']}")
    hdr = ("run", "wall s", "CPU s", "rows/s", "peak RSS MiB", "bytes in", "B/row", "same JSON")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    runs = [("local", "local"), ("cluster", f"cluster ({ex} executors)"), ("s3", f"S3 ({f.get('s3_server', 'moto')})"),
            ("tiny_local", f"local, {f.get('tiny', 0)} tiny captures"),
            ("tiny_cluster", f"cluster, {f.get('tiny', 0)} tiny captures")]
    for key, label in runs:
        m = load(f"{key}.metrics.json")
        if not m:
            continue
        r = rows if not key.startswith("tiny") else f["tiny_rows"]
        cpu = m["user_s"] + m["sys_s"]
        rss = f"{m['peak_rss_kib'] / 1024:.0f}"
        if key == "cluster":
            cpu += sum(e["cpu_s"] for e in f["cluster_executors"])
            rss += " client; " + ", ".join(f"{e['hwm_kib'] / 1024:.0f}"
                                           for e in f["cluster_executors"]) + " executors; "
            rss += f"{f['cluster_scheduler_hwm_kib'] / 1024:.0f} scheduler"
        if key == "tiny_cluster":
            cpu += sum(e["cpu_s"] for e in f["tiny_cluster_executors"])
        if key == "local":
            bin_, what = m["rchar"], "rchar"
        elif key == "s3":
            bin_, what = f["s3_from_server"], "from S3"
        elif key == "cluster":
            bin_, what = f["cluster_lo_bytes"], "loopback"
        else:
            bin_, what = f.get(f"{key}_bytes", 0), "loopback" if "cluster" in key else "rchar"
            if key == "tiny_local":
                bin_ = m["rchar"]
        same = f.get(f"{key}_same", "-")
        print(f"| {label} | {m['wall_s']:.1f} | {cpu:.1f} | {r / m['wall_s'] / 1e6:.2f} M | "
              f"{rss} | {bin_ / mib:.1f} MiB ({what}) | {bin_ / r:.2f} | {same} |")
    local = load("local.metrics.json")
    cluster = load("cluster.metrics.json")
    s3 = load("s3.metrics.json")
    tl, tc = load("tiny_local.metrics.json"), load("tiny_cluster.metrics.json")
    print()
    if cluster:
        print(f"cluster / local wall: {cluster['wall_s'] / local['wall_s']:.2f}x; "
              f"{rows / cluster['wall_s'] / ex / 1e6:.3f} M rows/s per executor "
              f"(local: {rows / local['wall_s'] / 1e6:.3f} M rows/s in one process)")
    if s3:
        print(f"S3 / local wall: {s3['wall_s'] / local['wall_s']:.2f}x; bytes from S3 / bytes "
              f"the local run read (rchar): {f['s3_from_server'] / local['rchar']:.3f}; from S3 "
              f"/ fleet size on disk: {f['s3_from_server'] / f['fleet_bytes']:.3f}; "
              f"{f['s3_requests']} requests ({f['s3_to_server'] / mib:.1f} MiB to the server); "
              f"{f.get('s3_server', 'moto')} peak RSS "
              f"{f.get('s3_server_hwm_kib', f.get('s3_moto_hwm_kib', 0)) / 1024:.0f} MiB, "
              f"{f.get('s3_server_cpu_s', 0):.1f} s of CPU during the run")
    per_cap = {}
    for key, m in (("local", tl), ("cluster", tc)):
        if m:
            per_cap[key] = m["wall_s"] / f["tiny"]
            cpu = m["user_s"] + m["sys_s"] + sum(
                e["cpu_s"] for e in f.get(f"tiny_{key}_executors", []))
            print(f"per-capture fixed cost ({key}, --jobs {f['jobs']}): "
                  f"{per_cap[key] * 1000:.0f} ms of wall and {cpu / f['tiny'] * 1000:.0f} ms of "
                  f"CPU (client + executors) per capture "
                  f"({f['tiny']} captures of {f['tiny_rows'] // f['tiny']} rows)")
    for key in ("local", "cluster", "s3"):
        m = load(f"{key}.metrics.json")
        if m:
            cpu = m["user_s"] + m["sys_s"] + (
                sum(e["cpu_s"] for e in f["cluster_executors"]) if key == "cluster" else 0)
            print(f"{key}: {cpu / caps * 1000:.0f} ms of CPU (client + executors) per capture "
                  f"of {rows // caps} rows, {rows / cpu / 1e6:.2f} M rows per CPU-second")
    if cluster:
        rate = rows / cluster["wall_s"] / ex
        fixed = per_cap.get("cluster", 0.0)
        scan = max(cluster["wall_s"] - fixed * caps, 1e-9)
        scan_rate = rows / scan / ex
        print(f"of the cluster run's {cluster['wall_s']:.0f} s, about {min(fixed * caps, cluster['wall_s']):.0f} s "
              f"is per-capture overhead ({caps} x {fixed * 1000:.0f} ms)"
              + (f"; the rest scans at {scan_rate / 1e6:.2f} M rows/s per executor"
                 if fixed * caps < cluster["wall_s"] else ""))
        print(f"model: 100 billion rows on 100 executors at the measured {rate / 1e6:.3f} M rows/s "
              f"per executor (fixed cost included): {100e9 / (rate * 100) / 3600:.1f} h; "
              f"as 1,000 captures of 100M rows each, the per-capture cost adds "
              f"{1000 * fixed:.0f} s at --jobs {f['jobs']}; as 1M captures of 100k rows "
              f"(this fleet's shape) it adds {1e6 * fixed / 3600:.1f} h, unless --jobs grows")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "measure":
        measure(args[0], args[1:])
    elif cmd == "proxy":
        proxy(args[0], int(args[1]), args[2])
    elif cmd == "upload":
        upload(*args)
    elif cmd == "brief":
        m = json.load(open(args[0]))
        print(f"{m['wall_s']:.1f} s wall, {m['user_s'] + m['sys_s']:.1f} s CPU, peak RSS "
              f"{m['peak_rss_kib'] // 1024} MiB, rchar {m['rchar'] >> 20} MiB")
    elif cmd == "s3s-etags":
        s3s_etags(*args)
    elif cmd == "compare":
        compare(*args)
    elif cmd == "summary":
        summary(args[0])
    else:
        sys.exit(f"unknown command {cmd}")
