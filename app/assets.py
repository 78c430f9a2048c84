"""Asset URLs: where a client downloads a named S3 object. Pure string work — no S3 call at request
time; the bucket is replicated across regions and served through CloudFront (ASSET_BASE_URL), or
straight from the region's S3 endpoint when only ASSET_BUCKET is set."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from app.errors import AppError
from app.runtime import Runtime, runtime

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$"


class AssetUrl(BaseModel):
    name: str
    url: str
    bucket: str | None
    region: str


router = APIRouter(tags=["assets"])


@router.get("/v1/assets/{name:path}", response_model=AssetUrl,
            responses={503: {"description": "no bucket or base URL configured"}})
async def asset_url(name: Annotated[str, Path(pattern=NAME_PATTERN, description="object key")],
                    rt: Annotated[Runtime, Depends(runtime)]) -> AssetUrl:
    """The URL of asset `name` (object key, e.g. `textures/hero.png`)."""
    if ".." in name.split("/") or "//" in name or name.endswith("/"):
        raise AppError(422, "invalid_request", "invalid name: empty or '..' path segment",
                       fields=["name"])
    s = rt.settings
    if s.asset_base_url:
        base = s.asset_base_url.rstrip("/")
    elif s.asset_bucket:
        base = f"https://{s.asset_bucket}.s3.{s.region}.amazonaws.com"
    else:
        raise AppError(503, "assets_not_configured", "set ASSET_BASE_URL or ASSET_BUCKET")
    return AssetUrl(name=name, url=f"{base}/{quote(name, safe='/')}", bucket=s.asset_bucket,
                    region=s.region)
