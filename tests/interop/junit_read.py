"""Reads a JUnit XML file as CI tools do (the standard library's parser): prints the
suites' totals and each test case with its failure message, if any."""
import json
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
cases = []
for case in root.iter("testcase"):
    failure = case.find("failure")
    cases.append({"name": case.get("name"), "failure": None if failure is None else failure.get("message")})
print(json.dumps({"tests": int(root.get("tests")), "failures": int(root.get("failures")), "cases": cases}))
