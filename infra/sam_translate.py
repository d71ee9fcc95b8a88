"""Translates template.yaml (AWS SAM) into plain CloudFormation JSON, offline.

cfn-lint checks AWS::Serverless::* resources unexpanded and misses most errors inside them, so the
template checks lint this translation as well. Local CodeUri values are replaced by a placeholder S3 URI
(a local path is only valid after `sam package`), and managed policies come from the map bundled with
aws-sam-translator instead of IAM.

Usage: python infra/sam_translate.py TEMPLATE > OUT.json   (needs AWS_DEFAULT_REGION)
"""

import json
import pathlib
import sys

import samtranslator
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

BUNDLED_POLICIES = pathlib.Path(samtranslator.__file__).parent / "internal" / "data" / "aws_managed_policies.json"


class BundledPolicies:
    """The managed-policy map of the `aws` partition, as IAM would answer it."""

    def load(self):
        return json.loads(BUNDLED_POLICIES.read_text())["aws"]


def main(path):
    template = yaml_parse(pathlib.Path(path).read_text())
    globals_code = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_code.get("CodeUri"), str) and not globals_code["CodeUri"].startswith("s3://"):
        globals_code["CodeUri"] = "s3://optisync-placeholder/code.zip"
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://optisync-placeholder/code.zip"
    translated = transform(template, {}, BundledPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
