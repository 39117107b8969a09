"""A small closed-loop load generator for the GourmetGram benchmark: C
clients, each on its own keep-alive connection, POST the same image to
/predict as multipart field `file` until N requests are answered.
Prints one JSON line: p50/p99 latency (ms) and throughput (requests/s).

usage: loadgen.py HOST:PORT IMAGE CLIENTS REQUESTS [WARMUP]
"""
import http.client
import json
import sys
import threading
import time


def main():
    addr, image, clients, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else clients * 2
    host, port = addr.rsplit(":", 1)
    boundary = "gourmetgramBench"
    data = open(image, "rb").read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"food.jpeg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    lock = threading.Lock()
    latencies, errors, server = [], [], []
    left = [warmup + total]

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
                measured = left[0] < total
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            res = conn.getresponse()
            res.read()
            dt = time.perf_counter() - t0
            # Server-Timing (the Rust service sends it): the server's own time.
            timing = res.getheader("Server-Timing")
            work = None
            if timing:
                work = sum(float(p.split("dur=")[1]) for p in timing.split(",") if "dur=" in p)
            with lock:
                if res.status != 200:
                    errors.append(res.status)
                elif measured:
                    latencies.append((t0, dt))
                    if work is not None:
                        server.append(work)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(dt for _, dt in latencies)
    start = min(t0 for t0, _ in latencies)
    end = max(t0 + dt for t0, dt in latencies)

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000

    out = {"clients": clients, "requests": len(lat), "errors": len(errors),
           "p50_ms": round(pct(50), 1), "p99_ms": round(pct(99), 1),
           "rps": round(len(lat) / (end - start), 2)}
    if server:
        out["server_p50_ms"] = round(sorted(server)[len(server) // 2], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
