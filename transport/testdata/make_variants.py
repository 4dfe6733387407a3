#!/usr/bin/env python3
"""Derives the hand-made variants of envelope.eml: what mail servers, lists,
gateways and mail clients do to a mail, and broken mails that must be
rejected. Run from transport/testdata after `go test -update`; the outputs
are committed, this script documents how each was made."""
import base64, re

g = open("envelope.eml", "rb").read()
head, body = g.split(b"\r\n\r\n", 1)
boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
B = b"--" + boundary
parts = body.split(B)  # ['', text, env, '--\r\n']
text_part, env_part = parts[1], parts[2]
env_head, env_b64 = env_part.split(b"\r\n\r\n", 1)
sealed = base64.b64decode(env_b64)

def w(name, data):
    open(name, "wb").write(data)

def mail(head=head, text=text_part, env=env_part, extra=b"", epilogue=b""):
    return head + b"\r\n\r\n" + B + text + B + env + extra + B + b"--\r\n" + epilogue

received = (b"Return-Path: <bridge-a@a.example.com>\r\n"
    b"Delivered-To: bridge-b@b.example.org\r\n"
    b"Received: from mx1.b.example.org (mx1.b.example.org [192.0.2.10])\r\n"
    b"\tby imap.b.example.org (Postfix) with ESMTPS id 4Zx1\r\n"
    b"\tfor <bridge-b@b.example.org>; Tue, 24 Nov 2026 04:00:03 +0000 (UTC)\r\n"
    b"Received: from smtp.a.example.com (smtp.a.example.com [198.51.100.7])\r\n"
    b"\tby mx1.b.example.org with ESMTPS id 99a; Tue, 24 Nov 2026 04:00:02 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.example.com;\r\n"
    b"\ts=sel1; h=from:to:subject:date:message-id;\r\n"
    b"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=abcdef\r\n")
w("received.eml", received + mail())

# The envelope part re-encoded as quoted-printable, as some gateways do.
def qp_binary(data):
    out, line = [], b""
    for c in data:
        tok = bytes([c]) if 33 <= c <= 126 and c != 61 else b"=%02X" % c
        if len(line) + len(tok) > 75:
            out.append(line + b"=")
            line = b""
        line += tok
    out.append(line)
    return b"\r\n".join(out)
qp = qp_binary(sealed)
qp_head = env_head.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable")
w("quoted-printable.eml", mail(env=qp_head + b"\r\n\r\n" + qp + b"\r\n"))

# Base64 re-wrapped at 64 columns with a trailing space, as Exchange does.
b64 = base64.b64encode(sealed)
rewrapped = b"\r\n".join(b64[i:i+64] + b" " for i in range(0, len(b64), 64))
w("base64-rewrapped.eml", mail(env=env_head.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: BASE64") + b"\r\n\r\n" + rewrapped + b"\r\n"))

# A list footer as an extra part, and text after the closing boundary.
footer = (b"\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Disposition: inline\r\n\r\n"
    b"_______________________________________________\r\n"
    b"bridges mailing list\r\nhttps://lists.example.org/listinfo/bridges\r\n")
w("footer-part.eml", mail(extra=B + footer, epilogue=b"\r\nThis message was scanned by ExampleGuard.\r\n"))

# A footer appended inside the text part by a gateway.
w("footer-in-text.eml", mail(text=text_part.rstrip(b"\r\n") + b"\r\n\r\n-- \r\nCAUTION: This email originated from outside the organization.\r\n"))

# LF line endings, as a mail saved on a Unix system.
w("lf-endings.eml", g.replace(b"\r\n", b"\n"))

# Header lines re-folded and header names in other case.
h2 = head
h2 = h2.replace(b"X-Jirabridge-Sync: support-dev", b"x-jirabridge-sync:\r\n support-dev")
h2 = h2.replace(b"X-Jirabridge-Seq: 42", b"X-JIRABRIDGE-SEQ:    42")
h2 = h2.replace(b"X-Jirabridge-Kind: changes", b"x-JiraBridge-kind: \r\n\tchanges")
h2 = h2.replace(b"Content-Type: multipart/mixed;\r\n boundary=", b"content-type: multipart/mixed; boundary=")
h2 = h2.replace(b"Message-Id:", b"Message-ID:")
w("refolded-headers.eml", mail(head=h2))

# Wrapped once more by a gateway that adds a disclaimer part.
outer = b"jirabridge-outer-gateway-0001"
ob = b"--" + outer
inner_ct = re.search(rb"Content-Type: multipart/mixed;\r\n boundary=\"[^\"]+\"", head).group(0)
h3 = head.replace(inner_ct, b'Content-Type: multipart/mixed; boundary="' + outer + b'"')
inner = inner_ct + b"\r\n\r\n" + body
w("gateway-wrapped.eml", h3 + b"\r\n\r\n" + ob + b"\r\n" + inner + b"\r\n" + ob +
  b"\r\nContent-Type: text/plain\r\n\r\nDisclaimer: this mail is confidential.\r\n" + ob + b"--\r\n")

# The attachment re-typed as application/octet-stream.
w("octet-stream.eml", mail(env=env_head.replace(b"application/vnd.jirabridge.envelope", b"application/octet-stream")+ b"\r\n\r\n" + env_b64))

# A person forwarded the mail as an attachment from a mail client and saved
# the forward (Thunderbird style: LF, Mozilla headers, rfc822 part).
fwd_b = b"------------8A7F2C4D1E0B9A3F6C5D4E7B"
fwd = (b"X-Mozilla-Status: 0001\n"
    b"X-Mozilla-Status2: 00800000\n"
    b"X-Mozilla-Keys:                                                                                 \n"
    b"Message-ID: <3f1c2a9e-7a1b-4f0e-9d2c-5b8e6a7c1d2f@corp.example.net>\n"
    b"Date: Tue, 24 Nov 2026 09:12:44 +0100\n"
    b"MIME-Version: 1.0\n"
    b"User-Agent: Mozilla Thunderbird\n"
    b"Content-Language: en-US\n"
    b"To: Air Gap Desk <airgap@corp.example.net>\n"
    b"From: Jane Operator <jane@corp.example.net>\n"
    b"Subject: Fwd: [jirabridge] Support =?UTF-8?B?4oeE?= Dev #42\n"
    b"Content-Type: multipart/mixed;\n boundary=\"" + fwd_b[2:] + b"\"\n"
    b"\n"
    b"This is a multi-part message in MIME format.\n"
    + fwd_b + b"\n"
    b"Content-Type: text/plain; charset=UTF-8; format=flowed\n"
    b"Content-Transfer-Encoding: 7bit\n\n"
    b"Please put this on the USB stick for the other site.\n\nJane\n\n"
    + fwd_b + b"\n"
    b"Content-Type: message/rfc822; charset=UTF-8;\n name=\"[jirabridge] Support Dev #42.eml\"\n"
    b"Content-Disposition: attachment;\n filename=\"[jirabridge] Support Dev #42.eml\"\n\n"
    + (received + mail()).replace(b"\r\n", b"\n") + b"\n"
    + fwd_b + b"--\n")
w("forwarded-thunderbird.eml", fwd)

# --- rejects: reject-<reason>[.what].eml is a broken jirabridge mail,
# foreign-<reason>[.what].eml is mail that is not ours at all.
w("foreign-not_multipart.plain.eml", b"From: Alice <alice@example.org>\r\nTo: bridge-b@b.example.org\r\n"
  b"Subject: lunch?\r\nDate: Tue, 24 Nov 2026 04:00:00 +0000\r\nMessage-ID: <x1@example.org>\r\n\r\nAre you coming?\r\n")
w("foreign-no_envelope_part.pdf.eml", b"From: Alice <alice@example.org>\r\nTo: bridge-b@b.example.org\r\nSubject: report\r\n"
  b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
  b"--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--zz--\r\n")
w("reject-several_envelope_parts.eml", mail(extra=B + env_part))
w("reject-bad_transfer_encoding.eml", mail(env=env_head + b"\r\n\r\n" + env_b64[:40] + b"!!not base64!!" + env_b64[40:]))
w("reject-bad_transfer_encoding.footer-in-envelope.eml", mail(env=env_part.rstrip(b"\r\n") + b"\r\n\r\n-- \r\nSent from my gateway\r\n"))
w("reject-bad_transfer_encoding.unknown.eml", mail(env=env_head.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: x-uuencode") + b"\r\n\r\n" + env_b64))
w("reject-bad_meta.seq.eml", mail(head=head.replace(b"X-Jirabridge-Seq: 42", b"X-Jirabridge-Seq: forty-two")))
w("reject-bad_meta.kind.eml", mail(head=head.replace(b"X-Jirabridge-Kind: changes", b"X-Jirabridge-Kind: gossip")))
w("reject-missing_meta.eml", mail(head=head.replace(b"X-Jirabridge-Sender: node-a\r\n", b"")))
w("reject-meta_mismatch.subject.eml", mail(head=head.replace(b"#42", b"#43")))
w("reject-meta_mismatch.message-id.eml", mail(head=head.replace(b"<42.node-a", b"<41.node-a")))
w("reject-meta_mismatch.duplicate-header.eml", mail(head=head + b"\r\nX-Jirabridge-Seq: 43"))
w("reject-no_envelope_part.stripped.eml", mail(env=b"\r\nContent-Type: text/plain\r\n\r\n[attachment removed by policy]\r\n"))
w("reject-truncated.eml", g[: len(g) - 200])
w("reject-empty_envelope.eml", mail(env=env_head + b"\r\n\r\n"))
w("reject-bad_headers.eml", b"this is not a header line\r\n" + g)
w("reject-not_multipart.eml", head.replace(re.search(rb"Content-Type: multipart/mixed;\r\n boundary=\"[^\"]+\"", head).group(0), b"Content-Type: application/vnd.jirabridge.envelope") + b"\r\n\r\n" + env_b64)

# Signed by an S/MIME gateway: the mail becomes the first part of a
# multipart/signed mail.
sb = b"----smime-gateway-7f3a9c"
inner_ct2 = re.search(rb"Content-Type: multipart/mixed;\r\n boundary=\"[^\"]+\"", head).group(0)
h4 = head.replace(inner_ct2, b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n micalg=sha-256; boundary="' + sb + b'"')
w("smime-signed-by-gateway.eml", h4 + b"\r\n\r\nThis is an S/MIME signed message\r\n\r\n--" + sb + b"\r\n" + inner_ct2 + b"\r\n\r\n" + body + b"\r\n--" + sb +
  b"\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\n"
  b"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAKCAMIIF\r\n--" + sb + b"--\r\n")

# Saved by a client in mbox style: a "From " separator line first, LF.
w("mbox-from-line.eml", b"From bridge-a@a.example.com Tue Nov 24 04:00:03 2026\n" + (received + mail()).replace(b"\r\n", b"\n"))
