#!/bin/sh
# Home Assistant add-on entry: read /data/options.json, map it onto flags, serve.
# All the logic is in wyoming_whisper/addon.py; PYTHON is only for running this from a checkout.
exec "${PYTHON:-python3}" -m wyoming_whisper.addon "$@"
