"""Fan-out over generator items: load -> enrich (async, concurrent) -> score -> summarise.

    python examples/python/fanout.py              (from anywhere)

What it shows:
  * a generator op (load_articles) whose items stream one by one through the ops after it,
  * an `async def` op (enrich) run concurrently for all items thanks to `.parallel()`
    (the sleep stands for an HTTP call or a database query),
  * a plain op (score) run once per item,
  * `.collect()`: summarise runs once, with the list of every item's score,
  * `engine.stream(...)` to watch a run's events, and `await engine.arun(...)` to run
    inside asyncio code (async ops are then awaited on the caller's event loop).

The last line printed is the result as JSON.
"""

import asyncio
import json
import sys

from operonx.core import END, PARENT, START, GraphOp, op

from operonx_engine import Engine

ARTICLES = [
    {"id": "a1", "title": "Rust for data pipelines", "body": "rust async tokio pipelines scale well"},
    {"id": "a2", "title": "Cooking with cast iron", "body": "season the pan and keep it dry"},
    {"id": "a3", "title": "Python async tips", "body": "asyncio tasks pipelines and python generators"},
    {"id": "a4", "title": "Garden notes", "body": "tomatoes need sun water and patience"},
]

# A pretend remote service: article id -> view count.
VIEWS = {"a1": 1200, "a2": 300, "a3": 950, "a4": 80}


@op
def load_articles(articles: list, topic: str):
    """Yield one item per article: everything downstream runs once per item."""
    for article in articles:
        yield {"article": article}


@op
async def enrich(article: dict):
    """Fetch the article's view count from the (pretend) remote service."""
    await asyncio.sleep(0.01)  # network latency; items overlap, so 4 items take ~10 ms
    return {"enriched": {**article, "views": VIEWS[article["id"]]}}


@op
def score(enriched: dict, topic: str):
    """Relevance: topic words found in the body, weighted by popularity."""
    words = set(enriched["body"].split())
    hits = sum(1 for w in topic.split() if w in words)
    return {"scored": {"id": enriched["id"], "title": enriched["title"], "score": hits * 10 + enriched["views"] // 100}}


@op
def summarise(scored: list, min_score: int):
    """Runs once with the list of every item's `scored` value (in item order)."""
    ranked = sorted(scored, key=lambda s: (-s["score"], s["id"]))
    return {
        "summary": {
            "count": len(scored),
            "relevant": [s["title"] for s in ranked if s["score"] >= min_score],
            "top": ranked[0]["id"],
        }
    }


def build_graph() -> GraphOp:
    with GraphOp(name="rank_articles") as g:
        load = load_articles(name="load", articles=PARENT["articles"], topic=PARENT["topic"])
        fetch = enrich(name="enrich", article=load["article"].parallel())
        rate = score(name="score", enriched=fetch["enriched"], topic=PARENT["topic"])
        total = summarise(name="summarise", scored=rate["scored"].collect(), min_score=PARENT["min_score"])
        START >> load >> fetch >> rate >> total >> END
    return g


INPUTS = {"articles": ARTICLES, "topic": "async pipelines rust", "min_score": 15}


async def run_async(engine: Engine) -> dict:
    # In asyncio code, await the run; `async def` ops run on this same event loop.
    return await engine.arun(INPUTS)


def main() -> None:
    # Traces go to ./.operonx/traces.db (`operonx trace show RUN_ID` prints them).
    with Engine(build_graph()) as engine:
        # 1. Stream the run's events as they happen; the last event holds the result.
        for event in engine.stream(INPUTS):
            if event["type"] == "result":
                streamed = event["result"]
            elif event["type"] == "frame" and event["kind"] == "op_end":
                # e.g. "rank_articles.score[2]: ok" -- generator item 2 was scored
                item = event["ctx"][-1] if len(event["ctx"]) > 1 else ""
                print(f"{event['op']}{item}: {event['data']['status']}", file=sys.stderr)

        # 2. The same workflow from asyncio code.
        result = asyncio.run(run_async(engine))

    assert result == streamed, (result, streamed)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
