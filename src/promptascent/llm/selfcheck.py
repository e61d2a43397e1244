"""`python -m promptascent.llm.selfcheck`: load the embedded model and generate a few
tokens. Run after install: a llama.cpp build that crashes on this CPU fails here."""

from __future__ import annotations

import sys

from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.types import CompletionRequest, messages


def main() -> int:
    llm = EmbeddedLLM(instances=1)
    try:
        reply = llm.complete(CompletionRequest(messages(("user", "Say hello.")), max_tokens=8))
    finally:
        llm.close()
    if not reply.text.strip() or reply.usage.completion_tokens <= 0:
        print("selfcheck: the embedded model generated nothing", file=sys.stderr)
        return 1
    print(f"selfcheck: embedded model OK ({llm.info.model_id}): {reply.text.strip()[:40]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
