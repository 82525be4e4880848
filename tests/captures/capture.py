"""Captures the first bytes a client sends, on 127.0.0.1 only: `python3 capture.py OUT.bin -- CLIENT ARGS`.

The listener takes one connection, reads until the client has sent a whole TLS record sequence or
an HTTP head (or 2 s pass), saves the bytes and closes; the client's command line gets PORT replaced
by the listener's port. Used to make the captures in this folder (see README.md)."""
import socket, subprocess, sys, time

out, cmd = sys.argv[1], sys.argv[3:]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
client = subprocess.Popen([a.replace("PORT", str(port)) for a in cmd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
conn, _ = srv.accept()
conn.settimeout(0.5)
data = b""
deadline = time.time() + 2
while time.time() < deadline:
    try:
        chunk = conn.recv(65536)
    except socket.timeout:
        if data:
            break
        continue
    if not chunk:
        break
    data += chunk
conn.close()
client.kill()
open(out, "wb").write(data)
print(f"{out}: {len(data)} bytes")
