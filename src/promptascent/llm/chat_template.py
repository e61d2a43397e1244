"""Chat templates: chat messages as the prompt text a model was trained on.

Scoring continuations over HTTP goes through a completions endpoint, which takes text,
not messages; the text must be what the server's model would see for the same chat.
`chat_template` names where the template comes from:

- "chatml": `<|im_start|>role\\ncontent<|im_end|>\\n` per message, then the assistant
  header (the format of Qwen, SmolLM and many others; no default system message);
- a `.gguf` file: the template in its metadata (with its BOS and EOS tokens), exactly
  what llama.cpp applies to that model (needs llama-cpp-python to read the file);
- any other file: a Jinja chat template, as in a Hugging Face tokenizer_config.json.

Templates are rendered in Jinja's sandbox (they are text from a file the task file
names, not code to trust with the machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError
from promptascent.llm.types import Message

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template with the special tokens it may name."""

    source: str  # where it came from, for messages
    template: str
    bos_token: str = ""
    eos_token: str = ""

    @classmethod
    def load(cls, spec: str, *, base_dir: Path | None = None) -> ChatTemplate:
        """The template `spec` names (see the module docstring). ConfigError naming the
        spec when the file is missing or holds no template."""
        if spec == "chatml":
            return cls("chatml", CHATML)
        path = Path(spec).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(f"chat_template {spec!r}: no such file (or use 'chatml')")
        if path.suffix == ".gguf":
            return cls._from_gguf(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"chat_template {spec!r}: cannot read it ({e})") from None
        if "{" not in text:
            raise ConfigError(f"chat_template {spec!r}: not a Jinja template")
        return cls(str(path), text)

    @classmethod
    def _from_gguf(cls, path: Path) -> ChatTemplate:
        try:
            from llama_cpp import Llama
            from llama_cpp._utils import suppress_stdout_stderr
        except ImportError:
            raise ConfigError(
                f"chat_template {path}: reading a .gguf file needs llama-cpp-python "
                "(or give the template as a Jinja file)"
            ) from None
        with suppress_stdout_stderr(disable=False):
            vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        try:
            template = vocab.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"chat_template {path}: the file holds no chat template")
            eos = vocab.detokenize([vocab.token_eos()], special=True).decode("utf-8", "replace")
            bos = vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace")
        finally:
            vocab.close()
        return cls(str(path), template, bos, eos)

    def render(self, messages: tuple[Message, ...]) -> str:
        """The prompt text for `messages`, ready for the assistant's reply."""
        return _compiled(self.template).render(
            messages=[m.to_dict() for m in messages],
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


_CACHE: dict[str, Any] = {}


def _compiled(template: str) -> Any:
    if template not in _CACHE:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ConfigError(f"chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        _CACHE[template] = env.from_string(template)
    return _CACHE[template]
