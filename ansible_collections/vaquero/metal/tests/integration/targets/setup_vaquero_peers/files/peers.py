# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The real BMC peers of the integration targets, on 127.0.0.1 ports picked free.

    peers.py start DIR   start the emulated IPMI BMC (vaquero.bmc.emulator, pyghmi) and
                         sushy-emulator (fake driver, TLS with a self-signed CA, basic auth);
                         print their ports as JSON once both answer
    peers.py stop DIR    stop them

Each peer runs under coreutils ``timeout``, so a run that never reaches ``stop`` still ends
them. The BMC password is random and only written to DIR/password (0600).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

LIFETIME = 900  # seconds a peer lives at most
USERNAME = "admin"
SUSHY_UUID = "27946b59-9e44-4fa7-8e91-f3527a1ef094"
SUSHY_MAC = "00:5c:52:31:3a:9c"


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(check, what, timeout=90.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    raise SystemExit("%s did not come up within %gs: %s" % (what, timeout, last))


def make_cert(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "bmc.crt"), os.path.join(folder, "bmc.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cert_path, key_path


def spawn(folder, name, argv):
    log = open(os.path.join(folder, name + ".log"), "w")
    proc = subprocess.Popen(["timeout", str(LIFETIME)] + argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def start(folder):
    import bcrypt

    os.makedirs(folder, exist_ok=True)
    password = secrets.token_urlsafe(18)
    pwfile = os.path.join(folder, "password")
    with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(password)

    ipmi_port, control_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    pids = [
        spawn(
            folder,
            "ipmi",
            [sys.executable, "-m", "vaquero.bmc.emulator", "--address", "127.0.0.1", "--port", str(ipmi_port), "--count", "1", "--username", USERNAME,
             "--password-file", pwfile, "--control-port", str(control_port), "--acpi-delay", "0.3"],
        )
    ]  # fmt: skip

    cert, key = make_cert(folder)
    htpasswd = os.path.join(folder, "htpasswd")
    with open(htpasswd, "w") as f:  # a cheap bcrypt cost: ~20 ms a request instead of ~250
        f.write("%s:%s\n" % (USERNAME, bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()))
    state = os.path.join(folder, "sushy-state")
    os.makedirs(state, exist_ok=True)
    sushy_port = free_port(socket.SOCK_STREAM)
    systems = [{"uuid": SUSHY_UUID, "name": "fake", "power_state": "Off", "nics": [{"mac": SUSHY_MAC, "ip": "172.22.0.100"}]}]
    conf = os.path.join(folder, "sushy.conf")
    with open(conf, "w") as f:
        f.write(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = %d\nSUSHY_EMULATOR_SSL_CERT = %r\nSUSHY_EMULATOR_SSL_KEY = %r\n"
            "SUSHY_EMULATOR_AUTH_FILE = %r\nSUSHY_EMULATOR_STATE_DIR = %r\nSUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = %r\n"
            % (sushy_port, cert, key, htpasswd, state, systems)
        )
    pids.append(spawn(folder, "sushy", [sys.executable, os.path.abspath(__file__), "sushy", "--config", conf]))
    with open(os.path.join(folder, "pids.json"), "w") as f:
        json.dump(pids, f)

    wait(lambda: urllib.request.urlopen("http://127.0.0.1:%d/" % control_port, timeout=2).status == 200, "the IPMI emulator")
    wait(lambda: socket.create_connection(("127.0.0.1", sushy_port), timeout=1).close() is None, "sushy-emulator")
    ports = dict(ipmi_port=ipmi_port, control_port=control_port, sushy_port=sushy_port)
    print(json.dumps(dict(ports, ca_path=cert, uuid=SUSHY_UUID, mac=SUSHY_MAC, username=USERNAME)))


def stop(folder):
    try:
        with open(os.path.join(folder, "pids.json")) as f:
            pids = json.load(f)
    except FileNotFoundError:
        return
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)  # the session: timeout and the peer under it
        except ProcessLookupError:
            pass
    os.unlink(os.path.join(folder, "pids.json"))


def sushy(argv):
    # The fake driver waits a random 1-11 s before a power change lands: pin it to none.
    from sushy_tools.emulator.resources.systems import fakedriver

    class NoDelay(object):
        @staticmethod
        def randint(a, b):
            return 0

    fakedriver.random = NoDelay
    from sushy_tools.emulator.main import main

    sys.argv = ["sushy-emulator"] + argv
    sys.exit(main())


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "sushy":
        sushy(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] in ("start", "stop"):
        (start if sys.argv[1] == "start" else stop)(sys.argv[2])
    else:
        raise SystemExit("usage: peers.py start|stop DIR")
