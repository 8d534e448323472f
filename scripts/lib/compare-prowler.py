#!/usr/bin/env python3
"""Runs Prowler and Vigil against the same emulated AWS account and lines up their
CIS AWS Foundations v3.0.0 verdicts, control by control. Called by
scripts/compare-prowler, which installs both tools; run it with the Python that has
moto (and so boto3) installed.

For each state asked for (`good`: hardened, `bad`: one known failure per check), a
fresh moto_server is started on a free loopback port, seeded by seed-comply.py, and
scanned in one region by `prowler aws --compliance cis_3.0_aws` and by
`vigil comply collect` + `vigil comply assess`, both without retries (moto answers
the operations it lacks with 500, which both SDKs would retry with backoff). Every
control gets both verdicts.
A control both tools assess (PASS or FAIL from each) with different verdicts, or
any other disagreement, must match one of the known differences (EXPLAINED), each with
its reason; anything else is printed as UNEXPLAINED and the exit status is 1.
"""

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT_MFA = ("moto's credential report has no <root_account> row; Prowler judges root MFA only "
            "from that row, Vigil also from GetAccountSummary (AccountMFAEnabled = 0)")
PROFILE = ("a Manual control in CIS 3.0.0: Vigil leaves it to a person, Prowler runs "
           "ec2_instance_profile_attached")
VERSIONING = ("MFA delete: moto answers GetBucketVersioning under a <GetBucketVersioningResponse> "
              "root where S3 sends <VersioningConfiguration>; aws-sdk-rust refuses it, so Vigil "
              "says ERROR, botocore does not look at the root")

# Known differences: (control, Prowler's verdict, Vigil's verdict) -> the reason.
# "-" is "no result" (Prowler wrote no row for the control).
EXPLAINED = {
    ("1.4", "-", "PASS"): "moto's credential report has no <root_account> row; Prowler judges the "
    "root checks only from that row, Vigil also from GetAccountSummary (AccountAccessKeysPresent = 0)",
    ("1.5", "-", "FAIL"): ROOT_MFA,
    ("1.6", "-", "FAIL"): ROOT_MFA,
    ("1.7", "-", "ERROR"): "moto's credential report has no <root_account> row: Prowler writes nothing, "
    "Vigil says it cannot judge root use (ERROR, 'no root row')",
    ("1.18", "FAIL", "MANUAL"): PROFILE,
    ("1.18", "PASS", "MANUAL"): PROFILE,
    ("1.20", "-", "ERROR"): "IAM Access Analyzer is not emulated by moto 5.2.5: Prowler writes nothing, "
    "Vigil reports the failed ListAnalyzers read as ERROR",
    ("1.21", "FAIL", "MANUAL"): "a Manual control in CIS 3.0.0 (central identity management): Prowler "
    "fails it when no SAML provider exists, Vigil leaves it to a person",
    ("2.1.2", "FAIL", "ERROR"): VERSIONING,
    ("2.1.2", "PASS", "ERROR"): VERSIONING,
    ("2.1.3", "PASS", "MANUAL"): "a Manual control in CIS 3.0.0 (data discovery and classification): "
    "Prowler passes it because moto reports Macie enabled, Vigil leaves it to a person",
    ("2.3.3", "PASS", "FAIL"): "the RDS instance is PubliclyAccessible: the benchmark's audit fails "
    "that flag (Vigil); Prowler passes it when no security group opens the DB port to the internet",
    ("3.1", "PASS", "FAIL"): "the broken account has only a single-region trail: the benchmark asks for "
    "a multi-region trail (Vigil fails it); Prowler, scanning one region, passes any trail that "
    "logs that region",
    ("1.19", "-", "PASS"): "the hardened account has no IAM server certificate: Vigil's check is "
    "NOT_APPLICABLE and the control passes, Prowler writes no row",
    ("2.1.4", "FAIL", "PASS"): "the hardened account blocks public access account-wide: Prowler's S3 "
    "Control call goes to <account-id>.127.0.0.1 (the SDK's host prefix), cannot connect, and so "
    "judges each bucket without the account-level block; Vigil turns the prefix off and reads it",
    ("4.15", "FAIL", "ERROR"): "Vigil cannot read the alarms (CloudWatch: see 4.1-4.14), and Prowler's "
    "Organizations pattern also demands CancelHandshake, CreateOrganization and EnableAllFeatures, "
    "which the benchmark's pattern (the one seeded) does not list",
    ("4.16", "-", "PASS"): "Security Hub is enabled: moto answers Prowler's GetEnabledStandards with "
    "404, so Prowler drops the hub and writes no row; Vigil reads DescribeHub",
    ("5.5", "-", "MANUAL"): "a Manual control (peering routes): Prowler writes nothing when there is "
    "no peering connection, Vigil leaves it to a person",
}
for _n in range(1, 15):
    EXPLAINED[(f"4.{_n}", "PASS", "ERROR")] = (
        "the hardened account's metric filter has its alarm, but aws-sdk-rust calls CloudWatch in the "
        "RPCv2 CBOR protocol, which moto 5.2.5 does not serve, so Vigil cannot read the alarms and "
        "says ERROR; botocore uses the query protocol")

CIS_FRAMEWORK = "cis_3.0_aws"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """A moto_server of its own on a free loopback port, stopped on exit."""

    def __init__(self, moto_server, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise SystemExit(f"moto_server exited early (rc {self.proc.returncode}); see {log_path}")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"moto_server did not answer on {self.url} within 30 s; see {log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_timed(cmd, env, log_path):
    start = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    return rc, time.monotonic() - start


def order(control):
    return [int(p) for p in control.split(".")]


def prowler_verdicts(csv_path):
    """Per requirement: FAIL if any row fails, else PASS if any passes, else what the rows say."""
    seen = defaultdict(set)
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            seen[row["REQUIREMENTS_ID"]].add(row["STATUS"])
    out = {}
    for control, statuses in seen.items():
        if "FAIL" in statuses:
            out[control] = "FAIL"
        elif "PASS" in statuses:
            out[control] = "PASS"
        else:
            out[control] = "/".join(sorted(statuses))
    return out


def vigil_verdicts(assess_json):
    with open(assess_json) as f:
        doc = json.load(f)
    cis = [fw for fw in doc["frameworks"] if fw["framework"].upper() == "CIS"]
    if not cis:
        raise SystemExit(f"{assess_json}: no CIS framework in Vigil's assessment")
    return {c["control_id"]: c["status"] for c in cis[0]["controls"]}


def compare_state(state, args, work):
    d = work / state
    d.mkdir(parents=True, exist_ok=True)
    moto = Moto(args.moto_server, d / "moto.log")
    try:
        seeded = subprocess.run([sys.executable, str(args.seed), "--endpoint", moto.url,
                                 "--state", state, "--region", args.region],
                                capture_output=True, text=True)
        if seeded.returncode != 0:
            raise SystemExit(f"seeding the {state} account failed:\n{seeded.stderr}")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        # No retries, for either tool: the operations moto does not implement answer
        # 500, which both SDKs would retry with backoff (on AWS they succeed).
        env.update(AWS_ENDPOINT_URL=moto.url, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=args.region,
                   AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1")

        prowler_cmd = [str(args.prowler), "aws", "--compliance", CIS_FRAMEWORK, "-f", args.region,
                       "--scan-unused-services", "--aws-retries-max-attempts", "0",
                       "--output-formats", "csv",
                       "-o", str(d / "prowler"), "-F", "prowler", "--no-banner", "-z"]
        rc, prowler_s = run_timed(prowler_cmd, env, d / "prowler.log")
        # Prowler exits 3 when a check fails; anything else non-zero is its own failure.
        if rc not in (0, 3):
            raise SystemExit(f"prowler exited {rc}; see {d / 'prowler.log'}")
        report = d / "prowler" / "compliance" / f"prowler_{CIS_FRAMEWORK}.csv"
        if not report.exists():
            raise SystemExit(f"prowler wrote no {report.name}; see {d / 'prowler.log'}")
        prowler = prowler_verdicts(report)

        snap = d / "vigil-snapshot.json"
        rc, collect_s = run_timed([str(args.vigil), "comply", "collect", "--region", args.region,
                                   "--endpoint-url", moto.url, "--out", str(snap)],
                                  env, d / "vigil-collect.log")
        # 3: some reads failed (named in the log, judged ERROR); the snapshot is written.
        if rc not in (0, 3) or not snap.exists():
            raise SystemExit(f"vigil comply collect exited {rc}; see {d / 'vigil-collect.log'}")
        start = time.monotonic()
        with open(d / "vigil-assess.json", "w") as out:
            rc = subprocess.run([str(args.vigil), "comply", "assess", "--snapshot", str(snap),
                                 "--framework", "cis", "--json"], env=env, stdout=out).returncode
        assess_s = time.monotonic() - start
        if rc not in (0, 3):
            raise SystemExit(f"vigil comply assess exited {rc}")
        vigil = vigil_verdicts(d / "vigil-assess.json")
    finally:
        moto.stop()

    print(f"\n== the {state} account: CIS AWS Foundations v3.0.0, one region ({args.region}) ==")
    print(f"{'control':8} {'Prowler':9} {'Vigil':13} ")
    same = both = explained = 0
    unexplained = []
    notes = {}
    for control in sorted(set(prowler) | set(vigil), key=order):
        p, v = prowler.get(control, "-"), vigil.get(control, "-")
        assessed = p in ("PASS", "FAIL") and v in ("PASS", "FAIL")
        both += assessed
        if p == v:
            same += 1
            mark = "same"
        elif (control, p, v) in EXPLAINED:
            explained += 1
            text = EXPLAINED[(control, p, v)]
            if text not in notes:
                notes[text] = (chr(ord("a") + len(notes)) if len(notes) < 26 else str(len(notes)), [])
            notes[text][1].append(control)
            mark = f"differs, see [{notes[text][0]}]"
        else:
            unexplained.append(control)
            mark = "UNEXPLAINED"
        print(f"{control:8} {p:9} {v:13} {mark}")
    for text, (key, controls) in notes.items():
        print(f"  [{key}] {', '.join(controls)}: {text}")
    agree = sum(1 for c in set(prowler) & set(vigil)
                if prowler[c] == vigil[c] and prowler[c] in ("PASS", "FAIL"))
    vigil_s = collect_s + assess_s
    print(f"{len(set(prowler) | set(vigil))} controls: both tools give PASS or FAIL on {both}, "
          f"the same one on {agree}; in all, {same} the same, {explained} different for a known "
          f"reason, {len(unexplained)} different for no known reason")
    print(f"wall time: Prowler {prowler_s:.1f} s; Vigil {vigil_s:.2f} s "
          f"(collect {collect_s:.2f} s + assess {assess_s:.2f} s): "
          f"Vigil {prowler_s / vigil_s:.0f}x faster (goal: at least 20x)")
    return unexplained, prowler_s, vigil_s


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prowler", type=Path, required=True, help="the prowler executable")
    p.add_argument("--vigil", type=Path, required=True, help="the vigil executable")
    p.add_argument("--moto-server", required=True, help="the moto_server executable")
    p.add_argument("--seed", type=Path, default=Path(__file__).with_name("seed-comply.py"))
    p.add_argument("--state", choices=["good", "bad", "both"], default="both")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--out", type=Path, help="keep every output here (default: a temporary directory)")
    a = p.parse_args()

    states = ["good", "bad"] if a.state == "both" else [a.state]
    with tempfile.TemporaryDirectory(prefix="vigil-compare-") as tmp:
        work = a.out or Path(tmp)
        failures = []
        speedups = []
        for state in states:
            try:
                unexplained, prowler_s, vigil_s = compare_state(state, a, work)
            except SystemExit as e:
                if a.out is None:
                    raise SystemExit(f"{e.code}\n(the logs named are removed: rerun with --out DIR "
                                     "to keep them)") from None
                raise
            failures += [f"{state}: {c}" for c in unexplained]
            speedups.append(prowler_s / vigil_s)
        low, high = f"{min(speedups):.0f}x", f"{max(speedups):.0f}x"
        print(f"\nVigil was {low if low == high else low + ' to ' + high} faster than Prowler.")
        if failures:
            print("UNEXPLAINED differences: " + ", ".join(failures))
            if a.out is None:
                print("(rerun with --out DIR to keep both tools' outputs)")
            return 1
        if min(speedups) < 20:
            print("Vigil was less than 20x faster than Prowler.")
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
