"""Do the members fit together? From their metadata to the ensemble's own signature.

A pure function of the ensemble config and each member's model metadata (the
JSON that `GET /v2/models/<model>` answers, or gRPC ModelMetadata as JSON):
no I/O, so the router runs it before it goes ready and the operator can run
it on metadata it fetched itself, to put the same reason in a condition.

What each strategy needs (rows are a tensor's first dimension):

- voting: every member has the same outputs (names, datatypes, shapes). The
  class label is the one integer output shaped [rows] or [rows, 1], or
  `voting.labelOutput`; class probabilities are the one floating-point output
  shaped [rows, classes], or `voting.probabilitiesOutput`. Without a label
  output the label is the argmax of each member's probabilities. The ensemble
  answers the voted label and, when members give them, averaged probabilities.
- weighted: every member has the same outputs. Floating-point outputs are
  averaged with the normalised weights; an integer label output (as above)
  becomes the argmax of the averaged probabilities; other outputs are dropped.
- serial: every input of every step has a source, and each source produces
  the datatype the input takes with a shape that can match it.
- parallel: members may differ. `separate` answers "<member>.<output>" for
  every output; `concat` joins outputs that share a name along the last axis
  (a [rows] output becomes a column first), so they must agree on datatype and
  on every dimension but the last.

Members of fan-out strategies (all but serial) receive the ensemble's inputs
they declare; inputs several members take must agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelship_serving.protocol.datatypes import DATATYPES
from modelship_serving.router.config import INPUT_PREFIX, EnsembleConfig

ENSEMBLE_VERSION = "1"
DERIVED_LABEL = "label"
_INTEGER = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT = {"FP16", "FP32", "FP64"}


class IncompatibleMembers(ValueError):
    """The members cannot be combined as configured; `reasons` says each problem."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


@dataclass(frozen=True)
class TensorMeta:
    """A tensor as metadata describes it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.datatype} {list(self.shape)}"


@dataclass(frozen=True)
class MemberSignature:
    inputs: dict[str, TensorMeta]
    outputs: dict[str, TensorMeta]


@dataclass(frozen=True)
class MemberCall:
    """One member's part of a request: where each input comes from, what to ask back."""

    member: str
    inputs: dict[str, str]  # member input -> "$input.<name>" or "<member>.<output>"
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class VotePlan:
    label: str | None  # the members' label output; None: argmax of probabilities
    probabilities: str | None
    label_output: TensorMeta  # what the ensemble answers under the label's name


@dataclass(frozen=True)
class WeightedPlan:
    weights: dict[str, float]  # normalised to sum to 1
    averaged: tuple[str, ...]
    argmax: dict[str, str]  # integer label output -> the probabilities it follows


@dataclass(frozen=True)
class EnsemblePlan:
    """What the router runs: the ensemble's signature and each member's call."""

    name: str
    strategy: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    calls: tuple[MemberCall, ...]
    vote: VotePlan | None = None
    weighted: WeightedPlan | None = None
    combine: str | None = None  # parallel only
    columns: frozenset[str] = frozenset()  # concat: [rows] outputs stacked as columns
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # serial outputs


def check_members(config: EnsembleConfig, metadata: Mapping[str, Mapping[str, Any]]
                  ) -> EnsemblePlan:
    """The plan for `config` given each member's metadata (keyed by member name).

    Raises IncompatibleMembers listing every problem found. Deterministic and
    free of I/O: safe to call from the operator with metadata it fetched.
    """
    reasons: list[str] = []
    signatures: dict[str, MemberSignature] = {}
    for member in config.members:
        raw = metadata.get(member.name)
        if raw is None:
            reasons.append(f"member '{member.name}': no metadata")
            continue
        try:
            signatures[member.name] = parse_metadata(raw)
        except ValueError as exc:
            reasons.append(f"member '{member.name}': {exc}")
    if reasons:
        raise IncompatibleMembers(reasons)

    planner = _PLANNERS[config.strategy]
    plan = planner(config, signatures, reasons)
    if reasons or plan is None:
        raise IncompatibleMembers(reasons or ["no plan"])
    return plan


def compatibility_problems(config: EnsembleConfig, metadata: Mapping[str, Mapping[str, Any]]
                           ) -> list[str]:
    """Every reason the members do not fit (empty when they do)."""
    try:
        check_members(config, metadata)
    except IncompatibleMembers as exc:
        return exc.reasons
    return []


def parse_metadata(raw: Mapping[str, Any]) -> MemberSignature:
    """Inputs and outputs of model metadata JSON; ValueError when malformed."""
    if not isinstance(raw, Mapping):
        raise ValueError("metadata is not a JSON object")

    def tensors(kind: str) -> dict[str, TensorMeta]:
        items = raw.get(kind) or []
        if not isinstance(items, list):
            raise ValueError(f"metadata '{kind}' is not a list")
        out: dict[str, TensorMeta] = {}
        for item in items:
            try:
                name, datatype = str(item["name"]), str(item["datatype"])
                # gRPC metadata as JSON writes int64 dims as strings.
                shape = tuple(int(d) for d in item.get("shape", []))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"metadata {kind} entry {item!r:.80} is malformed") from None
            if datatype not in DATATYPES:
                raise ValueError(f"{kind[:-1]} '{name}' has unknown datatype {datatype!r}")
            out[name] = TensorMeta(name, datatype, shape)
        return out

    signature = MemberSignature(tensors("inputs"), tensors("outputs"))
    if not signature.outputs:
        raise ValueError("metadata lists no outputs")
    return signature


# -- shapes ----------------------------------------------------------------------


def merge_shapes(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The shape both can take (a fixed size wins over -1), or None when none can."""
    if len(a) != len(b):
        return None
    merged = []
    for x, y in zip(a, b, strict=True):
        if x == -1 or x == y:
            merged.append(y)
        elif y == -1:
            merged.append(x)
        else:
            return None
    return tuple(merged)


def is_column(t: TensorMeta) -> bool:
    """One value per row: shaped [rows] or [rows, 1]."""
    return len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1)


def is_probabilities(t: TensorMeta) -> bool:
    """Floating-point, one row of several classes: [rows, classes] with classes != 1."""
    return t.datatype in _FLOAT and len(t.shape) == 2 and t.shape[1] != 1


# -- fan-out strategies ------------------------------------------------------------------


def _fan_out_inputs(signatures: Mapping[str, MemberSignature], reasons: list[str]
                    ) -> tuple[TensorMeta, ...]:
    """The union of the members' inputs; inputs taken by several must agree."""
    merged: dict[str, TensorMeta] = {}
    first: dict[str, str] = {}
    for member, sig in signatures.items():
        for t in sig.inputs.values():
            seen = merged.get(t.name)
            if seen is None:
                merged[t.name], first[t.name] = t, member
                continue
            shape = merge_shapes(seen.shape, t.shape)
            if seen.datatype != t.datatype or shape is None:
                reasons.append(f"input '{t.name}': member '{first[t.name]}' takes "
                               f"{seen.describe()} but member '{member}' takes {t.describe()}")
                continue
            merged[t.name] = TensorMeta(t.name, t.datatype, shape)
    return tuple(merged.values())


def _common_outputs(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                    reasons: list[str]) -> dict[str, TensorMeta]:
    """The outputs every member has alike (voting, weighted); reasons for any difference."""
    names = [m.name for m in config.members]
    ref_name = names[0]
    common = dict(signatures[ref_name].outputs)
    for member in names[1:]:
        outputs = signatures[member].outputs
        if set(outputs) != set(common):
            reasons.append(f"member '{member}' has outputs {sorted(outputs)} but member "
                           f"'{ref_name}' has {sorted(common)}; {config.strategy} needs "
                           f"the same outputs from every member")
            continue
        for name, t in outputs.items():
            ref = common[name]
            shape = merge_shapes(ref.shape, t.shape)
            if ref.datatype != t.datatype or shape is None:
                reasons.append(f"output '{name}': member '{ref_name}' gives {ref.describe()} "
                               f"but member '{member}' gives {t.describe()}")
                continue
            common[name] = TensorMeta(name, t.datatype, shape)
    return common


def _fan_out_calls(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                   wanted: Sequence[str] | None = None) -> tuple[MemberCall, ...]:
    return tuple(
        MemberCall(
            member=m.name,
            inputs={n: INPUT_PREFIX + n for n in signatures[m.name].inputs},
            outputs=tuple(wanted if wanted is not None else signatures[m.name].outputs),
        )
        for m in config.members
    )


def _pick(candidates: list[TensorMeta], configured: str | None, outputs: Mapping[str, TensorMeta],
          *, what: str, field_name: str, reasons: list[str]) -> TensorMeta | None:
    """The configured output, else the only candidate; a reason when ambiguous."""
    if configured is not None:
        if configured not in outputs:
            reasons.append(f"voting.{field_name} '{configured}' is not an output of the "
                           f"members (outputs: {sorted(outputs)})")
            return None
        return outputs[configured]
    if len(candidates) > 1:
        reasons.append(f"members have several {what} outputs "
                       f"{sorted(t.name for t in candidates)}; set voting.{field_name}")
        return None
    return candidates[0] if candidates else None


def _plan_voting(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                 reasons: list[str]) -> EnsemblePlan | None:
    inputs = _fan_out_inputs(signatures, reasons)
    outputs = _common_outputs(config, signatures, reasons)
    if reasons:
        return None
    voting = config.voting
    label = _pick([t for t in outputs.values() if t.datatype in _INTEGER and is_column(t)],
                  voting.label_output if voting else None, outputs,
                  what="integer label", field_name="labelOutput", reasons=reasons)
    probs = _pick([t for t in outputs.values() if is_probabilities(t)],
                  voting.probabilities_output if voting else None, outputs,
                  what="probability", field_name="probabilitiesOutput", reasons=reasons)
    if label is not None and not (label.datatype in _INTEGER and is_column(label)):
        reasons.append(f"label output '{label.name}' is {label.describe()}; voting needs "
                       f"integer class labels shaped [rows] or [rows, 1]")
    if probs is not None and not is_probabilities(probs):
        reasons.append(f"probabilities output '{probs.name}' is {probs.describe()}; voting "
                       f"needs floating-point probabilities shaped [rows, classes]")
    if label is None and probs is None and not reasons:
        reasons.append(f"voting needs a class label output (integer, [rows] or [rows, 1]) or "
                       f"class probabilities (floating-point, [rows, classes]); members "
                       f"have {_describe_all(outputs)}")
    if reasons:
        return None

    if label is None:
        assert probs is not None
        label = TensorMeta(DERIVED_LABEL, "INT64", probs.shape[:1])
    wanted = [t.name for t in (label, probs) if t is not None and t.name in outputs]
    plan_outputs = [label] + ([probs] if probs is not None else [])
    return EnsemblePlan(
        name=config.name, strategy="voting", inputs=inputs, outputs=tuple(plan_outputs),
        calls=_fan_out_calls(config, signatures, wanted),
        vote=VotePlan(label=label.name if label.name in outputs else None,
                      probabilities=probs.name if probs else None, label_output=label),
    )


def _plan_weighted(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                   reasons: list[str]) -> EnsemblePlan | None:
    inputs = _fan_out_inputs(signatures, reasons)
    outputs = _common_outputs(config, signatures, reasons)
    if reasons:
        return None
    averaged = [t for t in outputs.values() if t.datatype in _FLOAT]
    if not averaged:
        reasons.append(f"weighted averages floating-point outputs; members have "
                       f"{_describe_all(outputs)}")
        return None
    probs = [t for t in averaged if is_probabilities(t)]
    argmax: dict[str, str] = {}
    if len(probs) == 1:
        argmax = {t.name: probs[0].name for t in outputs.values()
                  if t.datatype in _INTEGER and is_column(t)}
    total = sum(m.weight or 0.0 for m in config.members)
    weights = {m.name: (m.weight or 0.0) / total for m in config.members}
    kept = [t for t in outputs.values() if t in averaged or t.name in argmax]
    return EnsemblePlan(
        name=config.name, strategy="weighted", inputs=inputs, outputs=tuple(kept),
        calls=_fan_out_calls(config, signatures, [t.name for t in kept]),
        weighted=WeightedPlan(weights=weights, averaged=tuple(t.name for t in averaged),
                              argmax=argmax),
    )


def _plan_parallel(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                   reasons: list[str]) -> EnsemblePlan | None:
    inputs = _fan_out_inputs(signatures, reasons)
    combine = config.parallel.combine if config.parallel else "concat"
    outputs: list[TensorMeta] = []
    columns: set[str] = set()
    if combine == "separate":
        outputs = [TensorMeta(f"{m}.{t.name}", t.datatype, t.shape)
                   for m, sig in signatures.items() for t in sig.outputs.values()]
    else:
        groups: dict[str, list[tuple[str, TensorMeta]]] = {}
        for member, sig in signatures.items():
            for t in sig.outputs.values():
                groups.setdefault(t.name, []).append((member, t))
        for name, group in groups.items():
            joined = _concat_meta(name, group, reasons)
            if joined is not None:
                outputs.append(joined)
                if len(group) > 1 and len(group[0][1].shape) == 1:
                    columns.add(name)
    if reasons:
        return None
    return EnsemblePlan(name=config.name, strategy="parallel", inputs=inputs,
                        outputs=tuple(outputs), calls=_fan_out_calls(config, signatures),
                        combine=combine, columns=frozenset(columns))


def _concat_meta(name: str, group: list[tuple[str, TensorMeta]], reasons: list[str]
                 ) -> TensorMeta | None:
    """The output that joining `group` along the last axis gives."""
    first_member, first = group[0]
    if len(group) == 1:
        return first
    if not first.shape:
        reasons.append(f"output '{name}' is a scalar; concat joins along the last axis: use "
                       f"parallel.combine separate")
        return None
    column = len(first.shape) == 1
    rows_and_more = first.shape[:-1] if not column else first.shape
    last = 0
    for member, t in group:
        same_rank = len(t.shape) == len(first.shape)
        head = (t.shape if column else t.shape[:-1]) if same_rank else None
        if (t.datatype != first.datatype or head is None
                or merge_shapes(rows_and_more, head) is None):
            reasons.append(f"output '{name}': member '{first_member}' gives {first.describe()} "
                           f"but member '{member}' gives {t.describe()}; concat needs the "
                           f"same datatype and every dimension but the last alike")
            return None
        rows_and_more = merge_shapes(rows_and_more, head) or rows_and_more
        width = 1 if column else t.shape[-1]
        last = -1 if last == -1 or width == -1 else last + width
    return TensorMeta(name, first.datatype, (*rows_and_more, last))


# -- serial -------------------------------------------------------------------------------


def _plan_serial(config: EnsembleConfig, signatures: Mapping[str, MemberSignature],
                 reasons: list[str]) -> EnsemblePlan | None:
    steps = config.steps or []
    needed: dict[str, set[str]] = {s.member: set() for s in steps}
    ensemble_inputs: dict[str, TensorMeta] = {}
    for step in steps:
        sig = signatures[step.member]
        model = config.member(step.member).model
        unmapped = sorted(set(sig.inputs) - set(step.input_mapping))
        if unmapped:
            reasons.append(f"step '{step.member}': inputs {unmapped} of model '{model}' have "
                           f"no source in inputMapping")
        for key, source in step.input_mapping.items():
            target = sig.inputs.get(key)
            if target is None:
                reasons.append(f"step '{step.member}': inputMapping names input '{key}', but "
                               f"model '{model}' has inputs {sorted(sig.inputs)}")
                continue
            if source.startswith(INPUT_PREFIX):
                _serial_input(source.removeprefix(INPUT_PREFIX), target, step.member,
                              ensemble_inputs, reasons)
                continue
            producer, output = source.split(".", 1)
            produced = signatures[producer].outputs.get(output)
            if produced is None:
                reasons.append(f"step '{step.member}': input '{key}' reads '{source}', but "
                               f"member '{producer}' has outputs "
                               f"{sorted(signatures[producer].outputs)}")
                continue
            if (produced.datatype != target.datatype
                    or merge_shapes(produced.shape, target.shape) is None):
                reasons.append(f"step '{step.member}': input '{key}' takes "
                               f"{target.describe()} but '{source}' gives "
                               f"{produced.describe()}")
                continue
            needed[producer].add(output)

    sources: dict[str, tuple[str, str]] = {}
    if config.outputs:
        for name, out in config.outputs.items():
            sources[name] = (out.member, out.output)
    else:
        last = steps[-1].member
        sources = {name: (last, name) for name in signatures[last].outputs}
    outputs: list[TensorMeta] = []
    for name, (member, output) in sources.items():
        t = signatures[member].outputs.get(output)
        if t is None:
            reasons.append(f"output '{name}' reads '{member}.{output}', but member "
                           f"'{member}' has outputs {sorted(signatures[member].outputs)}")
            continue
        needed[member].add(output)
        outputs.append(TensorMeta(name, t.datatype, t.shape))
    if reasons:
        return None
    # A step nothing reads from still runs; it is asked for all it has.
    calls = tuple(MemberCall(s.member, dict(s.input_mapping),
                             tuple(n for n in signatures[s.member].outputs
                                   if n in needed[s.member] or not needed[s.member]))
                  for s in steps)
    return EnsemblePlan(name=config.name, strategy="serial",
                        inputs=tuple(ensemble_inputs.values()), outputs=tuple(outputs),
                        calls=calls, sources=sources)


def _serial_input(name: str, target: TensorMeta, member: str,
                  ensemble_inputs: dict[str, TensorMeta], reasons: list[str]) -> None:
    """Record ensemble input `name` as feeding `target`; it must suit every step it feeds."""
    seen = ensemble_inputs.get(name)
    if seen is None:
        ensemble_inputs[name] = TensorMeta(name, target.datatype, target.shape)
        return
    shape = merge_shapes(seen.shape, target.shape)
    if seen.datatype != target.datatype or shape is None:
        reasons.append(f"input '{name}' feeds {seen.describe()} elsewhere but step "
                       f"'{member}' takes it as {target.describe()}")
        return
    ensemble_inputs[name] = TensorMeta(name, seen.datatype, shape)


def _describe_all(outputs: Mapping[str, TensorMeta]) -> str:
    return ", ".join(f"'{t.name}' {t.describe()}" for t in outputs.values()) or "none"


_PLANNERS = {
    "voting": _plan_voting,
    "weighted": _plan_weighted,
    "serial": _plan_serial,
    "parallel": _plan_parallel,
}
