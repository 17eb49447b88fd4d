"""The annotators' web application (FastAPI; needs the ``annotate`` extra).

``create_app(settings)`` builds one application for one plan and one
database, so tests build one per database. Routes:

* ``GET /a/{token}``: the task page of the annotator whose token this is;
  ``GET /api/a/{token}/next`` and ``POST /api/a/{token}/submit`` (JSON) behind it.
* ``GET /img/{key}``: an image of the plan, by its opaque key (an HMAC of
  the image's number: no path ever comes from the client, and the URL says
  nothing about which dataset the image belongs to); cached by the browser.
* ``GET /admin/{token}`` and ``/api/admin/{token}/...``: progress, each
  annotator's control accuracy, new annotator links; a separate token.

Every page is sent with a strict Content-Security-Policy, no referrer (the
token is in the URL) and ``Cache-Control: no-store``.
"""

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from replication.annotate import assign, store
from replication.annotate.db import Database
from replication.annotate.plan import Plan

HERE = Path(__file__).resolve().parent
_CSP = ("default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: images never change within a plan
_IMAGE_CACHE = "private, max-age=31536000, immutable"


@dataclass(frozen=True)
class Settings:
    """What one server serves.

    Parameters
    ----------
    plan_dir : path of the plan folder (``replication annotate plan``)
    db_url : database URL (``sqlite:///votes.db`` or ``postgresql://...``)
    admin_token : the secret of the admin page
    """

    plan_dir: str | os.PathLike
    db_url: str
    admin_token: str


class Submission(BaseModel):
    """The answer to one assignment: the positions of the selected images."""

    model_config = ConfigDict(extra="forbid")
    assignment_id: str = Field(min_length=1, max_length=64)
    nonce: str = Field(min_length=1, max_length=128)
    selected: list[Annotated[int, Field(ge=0, le=10_000)]] = Field(max_length=10_000)


class TaskView(BaseModel):
    """A task as the page shows it (nothing about controls or datasets)."""

    assignment_id: str
    nonce: str
    class_names: list[str]
    gloss: str
    images: list[str]
    expires_in_s: int


class NextResponse(BaseModel):
    """The annotator's next task (None when none is left) and their count of submitted tasks."""

    task: TaskView | None
    submitted: int
    message: str | None = None


class NewAnnotators(BaseModel):
    """Annotators to create from the admin page."""

    model_config = ConfigDict(extra="forbid")
    names: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=1000)
    count: int = Field(default=0, ge=0, le=1000)


class AnnotationService:
    """The plan, the database and the image allow-list behind one application."""

    def __init__(self, settings: Settings):
        self.plan = Plan.read(settings.plan_dir)
        types = self.plan.media_types(f"{Path(settings.plan_dir) / 'images.csv'}")
        self.db = Database(settings.db_url)
        secret = store.load_plan(self.db, self.plan)
        self.admin_token = settings.admin_token
        paths = self.plan.images["path"].tolist()
        self.image_url = {int(no): f"/img/{store.image_key(secret, no)}" for no in self.plan.images["image_no"]}
        self.files = {url.rsplit("/", 1)[1]: (paths[no], types[no]) for no, url in self.image_url.items()}

    def view(self, a: assign.Assignment, now: float) -> TaskView:
        """What the page needs to show an assignment."""
        desc = self.plan.classes[a.class_id]
        return TaskView(assignment_id=a.assignment_id, nonce=a.nonce, class_names=list(desc.names), gloss=desc.gloss,
                        images=[self.image_url[no] for no in a.image_nos], expires_in_s=max(0, int(a.expires_at - now)))

    def submitted(self, annotator_id: str) -> int:
        """Tasks this annotator has submitted."""
        with self.db.transaction(write=False) as tx:
            return int(tx.one("SELECT COUNT(*) FROM assignments WHERE annotator_id = ? AND status = 'submitted'",
                              (annotator_id,))[0])

    def next(self, annotator_id: str, message: str | None = None) -> NextResponse:
        """The annotator's open or next task."""
        a = assign.next_assignment(self.db, annotator_id)
        return NextResponse(task=None if a is None else self.view(a, time.time()),
                            submitted=self.submitted(annotator_id), message=message)


def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings`` (see module doc). Raises InputError
    when the plan is broken, an image file cannot be served, or the database
    holds another plan -- before anything is served."""
    service = AnnotationService(settings)
    templates = _templates()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.db.close()

    app = FastAPI(title="replication annotate", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service = service
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        static = request.url.path.startswith("/static/")
        response.headers.setdefault("Cache-Control", "public, max-age=3600" if static else "no-store")
        return response

    def get_service(request: Request) -> AnnotationService:
        return request.app.state.service

    Service = Annotated[AnnotationService, Depends(get_service)]

    def annotator(token: str, svc: Service) -> str:
        annotator_id = store.find_annotator(svc.db, token)
        if annotator_id is None:
            raise HTTPException(404, "unknown link: ask for a new one")
        return annotator_id

    def admin(token: str, svc: Service) -> None:
        if not store.tokens_equal(token, svc.admin_token):
            raise HTTPException(404, "unknown link")

    Annotator = Annotated[str, Depends(annotator)]

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    @app.exception_handler(sqlite3.OperationalError)
    async def busy(request: Request, exc: sqlite3.OperationalError):
        return JSONResponse({"detail": "the server is busy; try again in a moment"}, status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith(("/a/", "/admin/")):
            return page("message.html", exc.status_code, title="Link not valid", text=exc.detail)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        return page("message.html", title="Image labelling", text="Open the personal link you were given.")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz")
    def health(svc: Service) -> dict:
        return {"ok": True, "plan_id": svc.plan.plan_id}

    @app.get("/a/{token}", response_class=HTMLResponse)
    def task_page(token: str, annotator_id: Annotator, svc: Service) -> HTMLResponse:
        state = svc.next(annotator_id).model_dump()
        return page("task.html", state={**state, "api": f"/api/a/{token}"})

    @app.get("/api/a/{token}/next")
    def next_task(annotator_id: Annotator, svc: Service) -> NextResponse:
        return svc.next(annotator_id)

    @app.post("/api/a/{token}/submit")
    def submit(body: Submission, annotator_id: Annotator, svc: Service) -> NextResponse:
        try:
            assign.submit(svc.db, annotator_id, body.assignment_id, body.nonce, body.selected)
        except assign.AssignmentError as exc:
            raise HTTPException(exc.status, exc.message) from None
        return svc.next(annotator_id)

    @app.get("/img/{key}")
    def image(key: str, svc: Service) -> FileResponse:
        found = svc.files.get(key)
        if found is None:
            raise HTTPException(404, "no such image")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": _IMAGE_CACHE})

    @app.get("/admin/{token}", response_class=HTMLResponse, dependencies=[Depends(admin)])
    def admin_page(token: str, svc: Service) -> HTMLResponse:
        prog = store.progress(svc.db)
        return page("admin.html", p=prog, plan=svc.plan.summary(), settings=svc.plan.settings,
                    plan_id=svc.plan.plan_id, api=f"/api/admin/{token}")

    @app.get("/api/admin/{token}/progress", dependencies=[Depends(admin)])
    def admin_progress(svc: Service) -> dict:
        return store.progress(svc.db)

    @app.post("/api/admin/{token}/annotators", dependencies=[Depends(admin)])
    def admin_add(body: NewAnnotators, request: Request, svc: Service) -> dict:
        from replication.errors import InputError

        try:
            created = store.add_annotators(svc.db, body.names, body.count)
        except InputError as exc:
            raise HTTPException(409, str(exc)) from None
        base = str(request.base_url).rstrip("/")
        return {"annotators": [{"annotator_id": a, "link": f"{base}/a/{t}"} for a, t in created]}

    return app
