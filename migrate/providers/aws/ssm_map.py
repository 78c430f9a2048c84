"""A JSON object the apps of every region poll from an SSM parameter of their own region (the home
routing map, the home writers map): one copy per region, read from the first region that answers,
compared copy by copy before a change (a run that died between two regions' writes left them unequal,
and the next run finishes them), written to every region, then waited out for one poll of the tasks.

Every AWS call goes through `clients.call`, so only ProviderError / TransientProviderError leave here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.clients import ClientFactory, call

PARAMETER_NOT_FOUND = frozenset({"ParameterNotFound"})


class SsmJsonMap:
    def __init__(self, regions: Sequence[str], clients: ClientFactory, parameter: str, *, what: str, where: str,
                 propagation_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """
        regions: every region of the spec, the source first (reads try them in this order).
        parameter: the parameter's name, a "{region}" template.
        what: what the map is, for its description and errors ("home routing map").
        propagation_seconds: how long a written value takes to reach every task (their poll, jittered, plus a margin).
        """
        self.regions = tuple(regions)
        self._clients, self._parameter, self.what, self.where = clients, parameter, what, where
        self.propagation_seconds = propagation_seconds
        self._sleep = sleep

    def parameter(self, region: str) -> str:
        """The map's SSM parameter in `region` (pure)."""
        return self._parameter.format(region=region)

    def read(self, region: str) -> dict[str, Any]:
        """`region`'s copy ({} when absent); a copy that is not a JSON object is a one-line error."""
        answer = call(self._clients("ssm", region), "get_parameter", region, absent=PARAMETER_NOT_FOUND,
                      Name=self.parameter(region))
        if answer is None:
            return {}
        try:
            doc = json.loads(answer["Parameter"]["Value"])
        except ValueError as exc:
            raise ProviderError(f"{self.parameter(region)} in {region} is not JSON: {exc}", where=self.where,
                                hint=f"the apps keep their last good {self.what}; rewrite it with the tool "
                                     "(run the phase again)") from None
        if not isinstance(doc, dict):
            raise ProviderError(f"{self.parameter(region)} in {region} is not a JSON object", where=self.where)
        return doc

    def current(self) -> dict[str, Any]:
        """The map from the first region that answers (a lost region does not stop a read)."""
        errors = []
        for region in self.regions:
            try:
                return self.read(region)
            except TransientProviderError as exc:
                errors.append(exc.one_line())
        raise TransientProviderError("no region's SSM answered: " + "; ".join(errors), where=self.where)

    def every_copy(self, *, may_miss: str | None = None) -> dict[str, dict[str, Any]]:
        """region → its copy; only `may_miss` (a lost region) may fail to answer."""
        copies = {}
        for region in self.regions:
            try:
                copies[region] = self.read(region)
            except TransientProviderError:
                if region != may_miss:
                    raise
        return copies

    def write(self, value: dict[str, Any], *, may_miss: str | None = None) -> None:
        """`value` in every region's copy, then one poll of the tasks waited out."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        for region in self.regions:
            try:
                call(self._clients("ssm", region), "put_parameter", region, Name=self.parameter(region), Value=text,
                     Type="String", Overwrite=True, Description=f"{self.what}, written by migrate")
            except TransientProviderError:
                if region != may_miss:
                    raise
        self._sleep(self.propagation_seconds)  # every task has polled the new map

    def change(self, update: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
        """Every copy made equal to `update` of the first one; written only when some copy differs. Whether it wrote."""
        copies = self.every_copy()
        wanted = update(dict(next(iter(copies.values()), {})))
        if all(copy == wanted for copy in copies.values()):
            return False
        self.write(wanted)
        return True
