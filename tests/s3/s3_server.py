#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small S3 server for the tests: exactly the calls quiver makes
(ListObjectsV2 with pagination, GetObject, HeadObject), path-style, every
request's SigV4 signature checked with one access key (wrong key id ->
403 InvalidAccessKeyId, wrong signature -> 403 SignatureDoesNotMatch).

Why not npm's s3rver: the tests must cut a transfer half-way and list an
object that then cannot be fetched, which needs control over the server;
this one also needs nothing beyond /usr/bin/python3, so CI has no network
step. The signature check here is written from the SigV4 specification
with Python's hmac/hashlib, independently of the C signer.

Objects are the files under ROOT/BUCKET/ (ETag: their MD5). Faults are read
from ROOT/.faults (JSON) at every request:
  {"drop": {"key": "repo/m/1/model.onnx", "after": 1000}}  send the full
      Content-Length, then `after` bytes, then close the connection
  {"ghost": "repo/m/1/gone.bin"}   listed (size 10) but GetObject says NoSuchKey
Each request is appended to ROOT/.requests as "METHOD /path?query".

Usage: s3_server.py ROOT ACCESS_KEY SECRET [--page N]; prints the port.
"""
import hashlib
import hmac
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import urllib.parse
from xml.sax.saxutils import escape

ROOT, KEY, SECRET = sys.argv[1], sys.argv[2], sys.argv[3]
PAGE = int(sys.argv[sys.argv.index("--page") + 1]) if "--page" in sys.argv else 1000
LOCK = threading.Lock()


def faults():
    try:
        with open(os.path.join(ROOT, ".faults")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def enc(s, safe=""):
    return urllib.parse.quote(s, safe=safe + "~")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", ctype="application/xml", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, s3code, msg):
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3code}</Code>"
                f"<Message>{escape(msg)}</Message></Error>").encode()
        self.reply(code, body)

    def check_sig(self, path, query):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "AccessDenied", "no SigV4 Authorization header"
        fields = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
        cred = fields.get("Credential", "").split("/")
        if len(cred) != 5 or cred[4] != "aws4_request":
            return "AuthorizationHeaderMalformed", "bad Credential"
        if cred[0] != KEY:
            return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        signed = fields.get("SignedHeaders", "").split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "AccessDenied", "host and x-amz-date must be signed"
        amz_date = self.headers.get("x-amz-date", "")
        if amz_date[:8] != cred[1]:
            return "AuthorizationHeaderMalformed", "date of the scope is not x-amz-date's"
        canon_uri = enc(urllib.parse.unquote(path), safe="/")
        pairs = sorted((enc(k), enc(v)) for k, v in
                       urllib.parse.parse_qsl(query, keep_blank_values=True))
        canon_query = "&".join(f"{k}={v}" for k, v in pairs)
        hdrs = "".join(f"{h}:{' '.join((self.headers.get(h) or '').split())}\n" for h in signed)
        payload = self.headers.get("x-amz-content-sha256", "")
        creq = "\n".join([self.command, canon_uri, canon_query, hdrs, ";".join(signed), payload])
        scope = "/".join(cred[1:])
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + SECRET).encode()
        for part in cred[1:]:
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, fields.get("Signature", "")):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not "
                    "match the signature you provided. Check your key and signing method.")
        return None

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        with LOCK:
            with open(os.path.join(ROOT, ".requests"), "a") as f:
                f.write(f"{self.command} {self.path}\n")
        bad = self.check_sig(url.path, url.query)
        if bad:
            return self.error(403, *bad)
        parts = urllib.parse.unquote(url.path).lstrip("/").split("/", 1)
        bucket = parts[0]
        bdir = os.path.join(ROOT, bucket)
        if not bucket or bucket.startswith(".") or not os.path.isdir(bdir):
            return self.error(404, "NoSuchBucket", "The specified bucket does not exist")
        if len(parts) == 1 or parts[1] == "":
            return self.list(bdir, urllib.parse.parse_qs(url.query, keep_blank_values=True))
        return self.get(bdir, parts[1])

    def objects(self, bdir):
        out = []
        for d, _, files in os.walk(bdir):
            for n in files:
                p = os.path.join(d, n)
                out.append((os.path.relpath(p, bdir), p))
        g = faults().get("ghost")
        if g:
            out.append((g, None))
        return sorted(out)

    def list(self, bdir, q):
        if q.get("list-type") != ["2"]:
            return self.error(400, "InvalidArgument", "only ListObjectsV2")
        prefix = q.get("prefix", [""])[0]
        start = q.get("continuation-token", [""])[0]
        objs = [o for o in self.objects(bdir) if o[0].startswith(prefix) and o[0] > start]
        page, more = objs[:PAGE], len(objs) > PAGE
        items = []
        for key, p in page:
            if p is None:
                size, etag = 10, "0" * 32
            else:
                data = open(p, "rb").read()
                size, etag = len(data), hashlib.md5(data).hexdigest()
            items.append(f"<Contents><Key>{escape(key)}</Key><Size>{size}</Size>"
                         f"<ETag>&quot;{etag}&quot;</ETag></Contents>")
        nxt = f"<NextContinuationToken>{escape(page[-1][0])}</NextContinuationToken>" if more else ""
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                f"<Name>{escape(os.path.basename(bdir))}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(page)}</KeyCount><IsTruncated>{'true' if more else 'false'}"
                f"</IsTruncated>{nxt}{''.join(items)}</ListBucketResult>").encode()
        self.reply(200, body)

    def get(self, bdir, key):
        p = os.path.join(bdir, key)
        if ".." in key.split("/") or not os.path.isfile(p):
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        data = open(p, "rb").read()
        drop = faults().get("drop")
        if drop and drop.get("key") == key and self.command == "GET":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f"\"{hashlib.md5(data).hexdigest()}\"")
            self.end_headers()
            self.wfile.write(data[:drop.get("after", len(data) // 2)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.reply(200, data, "application/octet-stream",
                   [("ETag", f"\"{hashlib.md5(data).hexdigest()}\"")])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
