"""Support-ticket triage: Python ops around a prompt, a model call and a JSON parser.

    python examples/python/llm_pipeline.py        (from anywhere; needs operonx[openai])

What it shows:
  * a Python op preparing the input (clean_ticket),
  * PromptOp turning a {placeholder} template into chat messages,
  * LLMOp calling the model named in resources.yaml -- here the engine's offline
    `replay` provider, which answers from replies.json (no network, no API key),
  * ParserOp reading the reply as JSON (a ```json fence is stripped) and converting
    fields to the declared types ("priority: int" turns "2" into 2),
  * a Python op acting on the parsed fields (route),
  * one Engine loaded once and run once per ticket.

The prompt, model and parser ops run natively in the Rust engine; only clean_ticket and
route run in Python. The last line printed is the result as JSON.
"""

import json
from pathlib import Path

from operonx.core import END, PARENT, START, GraphOp, ParserOp, op
from operonx.providers.ops.llm import LLMOp
from operonx.providers.ops.prompt import PromptOp

from operonx_engine import Engine

HERE = Path(__file__).resolve().parent

TICKETS = [
    {"id": "T-1001", "plan": "pro", "body": "  Hi,\nI was CHARGED TWICE for order 5521.   Please fix!  "},
    {"id": "T-1002", "plan": "free", "body": "The mobile app crashes every time I export a report."},
    {"id": "T-1003", "plan": "free", "body": "Do you have a dark mode?"},
]

TEAMS = {"billing": "payments", "bug": "engineering"}
SLA_HOURS = {1: 4, 2: 24, 3: 72}  # by priority; paying customers get half


@op
def clean_ticket(ticket: dict):
    """Collapse whitespace and lower-case the text before it goes into the prompt."""
    text = " ".join(ticket["body"].split()).lower()
    return {"ticket_id": ticket["id"], "plan": ticket["plan"], "text": text}


@op
def route(ticket_id: str, plan: str, category: str, priority: int, summary: str, tags: list):
    """Pick the team and the response deadline from the model's (parsed) answer."""
    hours = SLA_HOURS.get(priority, 72)
    if plan != "free":
        hours //= 2
    return {
        "ticket": {
            "id": ticket_id,
            "team": TEAMS.get(category, "support"),
            "priority": priority,
            "sla_hours": hours,
            "summary": summary,
            "tags": sorted(tags),
        }
    }


def build_graph() -> GraphOp:
    with GraphOp(name="triage") as g:
        clean = clean_ticket(name="clean", ticket=PARENT["ticket"])
        prompt = PromptOp.of(
            name="prompt",
            template={
                "system": (
                    "You triage support tickets. Reply with JSON only: "
                    '{{"category": "billing"|"bug"|"other", "priority": 1-3, '
                    '"summary": one sentence, "tags": [short words]}}'
                ),
                "user": "Ticket ({plan} plan): {text}",
            },
            plan=clean["plan"],
            text=clean["text"],
        )
        llm = LLMOp.of(name="llm", resource="triage-model", messages=prompt["messages"])
        parse = ParserOp(
            name="parse",
            format="json",
            extract=["category: str", "priority: int", "summary: str", "tags: list"],
            inputs={"text": llm["content"]},
        )
        decide = route(
            name="route",
            ticket_id=clean["ticket_id"],
            plan=clean["plan"],
            category=parse["category"],
            priority=parse["priority"],
            summary=parse["summary"],
            tags=parse["tags"],
        )
        START >> clean >> prompt >> llm >> parse >> decide >> END
    return g


def main() -> None:
    # Load once (validate + compile), run many times. Traces go to ./.operonx/traces.db.
    with Engine(build_graph(), resources=HERE / "resources.yaml") as engine:
        results = []
        for ticket in TICKETS:
            result = engine.run({"ticket": ticket})
            if result.errors:
                raise SystemExit(f"{ticket['id']} failed: {result.errors}")
            results.append(result["ticket"])
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
