"""Writes the mirror's sources that have no spider module (issue 24's test sites).

``python -m crawler.mirror.generate_sources`` (re)writes ``crawler/mirror/sites/<site>/`` for

* ``harborpost`` (www.harborpost.example): WordPress-like, an RSS feed named by
  ``<link rel=alternate>``, robots.txt naming the ``wp-sitemap.xml`` index, dated permalinks
  ``/YYYY/MM/DD/<slug>/``; category, tag and author pages; one sitemap post deleted (404);
* ``coastaldaily`` (news.coastaldaily.example): only a Google News sitemap (named in
  robots.txt), ``/news/<id>/<slug>``; no feed, a front page without article links; one item
  removed (410);
* ``plainpage`` (www.plain-page.example): no news site at all, a loop and 404s beside it;
* ``valleytimes`` (www.valleytimes.example): only listing pages (the front page and its
  "Older stories" pages, section pages), ``/stories/<slug>-<id>.html``; no feed, no sitemap;
  one link redirects in a loop.

The pages are generated from fixed word pools (deterministic: the same files every run), with
headline, date, body paragraphs, navigation, sidebar and footer boilerplate as real sites
have. Texts are invented.
"""

# The page templates below are HTML as sites write it: long lines are theirs.
# ruff: noqa: E501

from __future__ import annotations

import html
import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.mirror.routes import SITES_DIR

PLACES = (
    "Northfield",
    "Harbor City",
    "Eastbrook",
    "Millbridge",
    "Cedar Falls",
    "Port Alden",
    "Westvale",
    "Riverton",
    "Greenhaven",
    "Stonecross",
)
SUBJECTS = (
    ("council", "approves", "new budget for road repairs"),
    ("school board", "delays", "vote on later start times"),
    ("hospital", "opens", "a children's emergency wing"),
    ("port authority", "reports", "record container traffic"),
    ("farmers", "warn of", "a poor harvest after the dry spring"),
    ("police", "launch", "a review of night patrols"),
    ("library", "extends", "opening hours through the summer"),
    ("water utility", "raises", "rates for the first time in a decade"),
    ("transit agency", "adds", "late-night bus routes"),
    ("university", "announces", "a scholarship fund for local students"),
    ("fire service", "recruits", "thirty new volunteers"),
    ("chamber of commerce", "backs", "a plan to revive the old market hall"),
    ("housing trust", "breaks ground on", "two hundred affordable homes"),
    ("museum", "unveils", "a restored whaling ship"),
    ("regional airport", "wins", "approval for a longer runway"),
    ("health officials", "urge", "residents to get flu shots early"),
    ("county court", "rules on", "the disputed riverside development"),
    ("mayor", "proposes", "a ban on cars in the old town centre"),
    ("teachers' union", "accepts", "a three-year pay deal"),
    ("football club", "unveils", "plans for a new stadium"),
    ("energy cooperative", "switches on", "the county's largest solar farm"),
    ("zoo", "welcomes", "two rare snow leopard cubs"),
)
PEOPLE = (
    ("Maria Okafor", "the council's finance chair"),
    ("Daniel Reyes", "a spokesman for the agency"),
    ("Priya Natarajan", "who has lived in the area for thirty years"),
    ("Tom Lindqvist", "the project's lead engineer"),
    ("Aisha Rahman", "a local shop owner"),
    ("George Whitfield", "the opposition leader on the council"),
    ("Elena Petrova", "a researcher at the state university"),
    ("Samuel Adeyemi", "the director of the regional office"),
)
SENTENCES = (
    "The decision followed months of public hearings in which residents raised concerns "
    "about cost, traffic and noise.",
    "Officials said the first phase would begin in the autumn and take about eighteen "
    "months to complete.",
    "Critics argued that the plan had been rushed through without a proper study of its "
    "effect on smaller businesses.",
    "Supporters pointed to similar schemes in neighbouring towns, where they said the "
    "results had been encouraging.",
    "The measure passed by a narrow margin after a debate that lasted well into the evening.",
    "A report published last year found that demand had grown by nearly a fifth since 2020.",
    "Funding will come partly from a state grant and partly from savings elsewhere in the budget.",
    "Several speakers asked for a clearer timetable and regular updates on spending.",
    "The agency said it would publish its figures every quarter so that the public could "
    "follow the progress.",
    "Local groups have promised to keep a close watch on how the money is spent.",
    "Weather permitting, crews are expected on site before the end of the month.",
    "Some residents said they welcomed the change but worried about disruption during the works.",
    "Neighbouring districts are expected to consider comparable proposals later this year.",
    "The plan still needs the approval of the regional planning board.",
    "Opponents have said they will consider a legal challenge if their objections are ignored.",
    "Figures released on Monday showed the steepest rise in three years.",
    "The last comparable project, completed in 2019, came in under budget and ahead of schedule.",
    "Independent experts described the targets as ambitious but achievable.",
)
QUOTES = (
    "This is something people here have been asking for since I was a child.",
    "We have listened carefully, and we believe this is the right balance.",
    "Nobody has explained to us how this will be paid for in five years' time.",
    "It will take patience, but the benefits will be felt by everyone in the county.",
    "We are not against progress; we are against decisions made behind closed doors.",
    "The numbers speak for themselves, and they are better than we expected.",
)
SECTIONS = ("Politics", "Business", "Local", "Health", "Culture", "Sport")
START = datetime(2025, 6, 2, 7, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Story:
    number: int
    title: str
    slug: str
    section: str
    author: str
    published: datetime
    paragraphs: tuple[str, ...]

    def local(self, offset_hours: int) -> datetime:
        from datetime import timezone

        return self.published.astimezone(timezone(timedelta(hours=offset_hours)))


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(p for p in out.split("-") if p)[:70].strip("-")


def stories(seed: int, count: int) -> list[Story]:
    """``count`` invented stories, newest first, the same for the same seed."""
    rng = random.Random(seed)
    subjects = list(SUBJECTS)
    rng.shuffle(subjects)
    out = []
    for i in range(count):
        place = PLACES[(seed + i) % len(PLACES)]
        who, verb, what = subjects[i % len(subjects)]
        title = f"{place} {who} {verb} {what}"
        title = title[0].upper() + title[1:]
        if i >= len(subjects):
            title += f", {('second', 'third', 'fourth')[i // len(subjects) - 1]} time this year"
        name, role = PEOPLE[rng.randrange(len(PEOPLE))]
        sentences = list(SENTENCES)
        rng.shuffle(sentences)
        lead = (
            f"The {who} in {place} {verb} {what} on {_weekday(START, i)}, a move that "
            f"officials said would shape the town for years to come."
        )
        body = [lead]
        for j in range(rng.randint(4, 6)):
            body.append(
                " ".join(sentences[(2 * j) % len(sentences) : (2 * j) % len(sentences) + 2])
            )
            if j == 1:
                quote = QUOTES[rng.randrange(len(QUOTES))]
                body.append(f"\u201c{quote[:-1]},\u201d said {name}, {role}.")
        body.append(
            "A further meeting on the matter is due next month, when more details are expected."
        )
        published = START + timedelta(hours=9 * i + rng.randint(0, 5), minutes=rng.randint(0, 59))
        out.append(
            Story(
                number=i,
                title=title,
                slug=_slug(title),
                section=SECTIONS[rng.randrange(len(SECTIONS))],
                author=PEOPLE[(i * 3 + seed) % len(PEOPLE)][0],
                published=published,
                paragraphs=tuple(body),
            )
        )
    out.sort(key=lambda s: s.published, reverse=True)
    return out


def _weekday(start: datetime, i: int) -> str:
    return (start + timedelta(days=i)).strftime("%A")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def paragraphs_html(story: Story) -> str:
    return "\n".join(f"      <p>{esc(p)}</p>" for p in story.paragraphs)


@dataclass
class SiteFiles:
    name: str
    hosts: list[str]
    comment: str
    headers: dict[str, str]
    files: dict[str, str]
    routes: list[dict[str, Any]]

    def write(self, root: Path) -> None:
        target = root / self.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name, text in self.files.items():
            (target / name).write_text(text, encoding="utf-8")
        data = {
            "comment": self.comment,
            "_generated": "by python -m crawler.mirror.generate_sources; edit that, not this",
            "hosts": self.hosts,
            "headers": self.headers,
            "http_redirect": True,
            "not_found": {"file": "404.html", "content_type": "text/html; charset=UTF-8"},
            "routes": self.routes,
        }
        (target / "routes.json").write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def _page(
    *,
    lang: str,
    title: str,
    head: str,
    body_class: str,
    header: str,
    main: str,
    sidebar: str,
    footer: str,
) -> str:
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{esc(title)}</title>
{head}
  <link rel="stylesheet" href="/assets/site.css">
</head>
<body class="{body_class}">
{header}
  <div class="container">
{main}
{sidebar}
  </div>
{footer}
  <script src="/assets/site.js"></script>
</body>
</html>
"""


def _route(url: str, file: str, content_type: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "file": file, "content_type": content_type, **extra}


HTML = "text/html; charset=UTF-8"
XML = "application/xml; charset=UTF-8"
TEXT = "text/plain; charset=utf-8"


# --------------------------------------------------------------------------- harborpost


def harborpost() -> SiteFiles:
    host = "www.harborpost.example"
    base = f"https://{host}"
    posts = stories(seed=3, count=15)
    deleted = posts[6]  # in the sitemap, gone from the site
    live = [p for p in posts if p is not deleted]

    def url(story: Story) -> str:
        d = story.published
        return f"{base}/{d:%Y}/{d:%m}/{d:%d}/{story.slug}/"

    def path(story: Story) -> str:
        return url(story).removeprefix(base)

    nav = "\n".join(
        f'        <li class="menu-item"><a href="{base}/category/{s.lower()}/">{s}</a></li>'
        for s in SECTIONS[:5]
    )
    header = f"""  <header id="masthead" class="site-header">
    <div class="site-branding"><a href="{base}/" rel="home">The Harbor Post</a>
      <p class="site-description">News from the harbor towns since 1911</p></div>
    <nav id="site-navigation" class="main-navigation">
      <ul id="primary-menu" class="menu">
        <li class="menu-item"><a href="{base}/">Home</a></li>
{nav}
        <li class="menu-item"><a href="{base}/about-us/">About us</a></li>
      </ul>
    </nav>
  </header>"""
    recent = "\n".join(f'        <li><a href="{url(p)}">{esc(p.title)}</a></li>' for p in live[:5])
    sidebar = f"""    <aside id="secondary" class="widget-area">
      <section class="widget widget_recent_entries"><h2 class="widget-title">Recent Posts</h2>
        <ul>
{recent}
        </ul>
      </section>
      <section class="widget widget_tag_cloud"><h2 class="widget-title">Tags</h2>
        <a href="{base}/tag/council/">council</a> <a href="{base}/tag/transport/">transport</a>
        <a href="{base}/tag/schools/">schools</a>
      </section>
    </aside>"""
    footer = f"""  <footer id="colophon" class="site-footer">
    <p>Subscribe to our newsletter for the day's top stories, every morning.</p>
    <p>&copy; 2025 The Harbor Post. All rights reserved. <a href="{base}/privacy-policy/">Privacy</a>
      &middot; <a href="{base}/contact/">Contact</a></p>
    <p>Proudly powered by WordPress</p>
  </footer>"""
    feed_link = (
        f'  <link rel="alternate" type="application/rss+xml" title="The Harbor Post &raquo; Feed" '
        f'href="{base}/feed/">\n'
        f'  <link rel="alternate" type="application/rss+xml" title="The Harbor Post &raquo; '
        f'Comments Feed" href="{base}/comments/feed/">\n'
        f'  <link rel="https://api.w.org/" href="{base}/wp-json/">'
    )
    files: dict[str, str] = {}
    routes: list[dict[str, Any]] = [
        {"url": f"{base}/robots.txt", "file": "robots.txt", "content_type": TEXT},
        _route(f"{base}/", "index.html", HTML, encoding="gzip"),
        _route(f"{base}/feed/", "feed.xml", "application/rss+xml; charset=UTF-8", encoding="gzip"),
        _route(f"{base}/wp-sitemap.xml", "wp-sitemap.xml", XML),
        _route(f"{base}/wp-sitemap-posts-post-1.xml", "wp-sitemap-posts-post-1.xml", XML),
        _route(
            f"{base}/wp-sitemap-taxonomies-category-1.xml",
            "wp-sitemap-taxonomies-category-1.xml",
            XML,
        ),
        _route(f"{base}/wp-sitemap-users-1.xml", "wp-sitemap-users-1.xml", XML),
        {"url": "https://harborpost.example/", "redirect": f"{base}/"},
    ]
    files["robots.txt"] = (
        "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n\n"
        f"Sitemap: {base}/wp-sitemap.xml\n"
    )
    for story in live:
        local = story.local(-4)
        ld = {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "NewsArticle",
                    "headline": story.title,
                    "datePublished": local.isoformat(),
                    "author": {"@type": "Person", "name": story.author},
                    "articleSection": story.section,
                    "mainEntityOfPage": url(story),
                },
                {"@type": "WebSite", "name": "The Harbor Post", "url": f"{base}/"},
            ],
        }
        head = f"""  <meta property="og:type" content="article">
  <meta property="og:title" content="{esc(story.title)}">
  <meta property="og:url" content="{url(story)}">
  <meta property="og:site_name" content="The Harbor Post">
  <meta property="article:published_time" content="{local.isoformat()}">
  <meta property="article:section" content="{story.section}">
  <link rel="canonical" href="{url(story)}">
{feed_link}
  <script type="application/ld+json">{json.dumps(ld)}</script>"""
        main = f"""    <main id="primary" class="site-main">
    <article id="post-{1000 + story.number}" class="post type-post status-publish">
      <header class="entry-header">
        <span class="cat-links"><a href="{base}/category/{story.section.lower()}/">{story.section}</a></span>
        <h1 class="entry-title">{esc(story.title)}</h1>
        <div class="entry-meta">
          <span class="posted-on"><time class="entry-date published" datetime="{local.isoformat()}">{local:%B %-d, %Y}</time></span>
          <span class="byline">by <a href="{base}/author/{_slug(story.author)}/">{esc(story.author)}</a></span>
        </div>
      </header>
      <div class="entry-content">
{paragraphs_html(story)}
      </div>
      <footer class="entry-footer">
        <span class="tags-links">Tagged <a href="{base}/tag/council/" rel="tag">council</a></span>
        <div class="sharedaddy"><a href="#">Share on Facebook</a> <a href="#">Share on X</a></div>
      </footer>
    </article>
    <nav class="navigation post-navigation"><a href="{base}/" rel="prev">Previous post</a></nav>
    </main>"""
        name = f"post-{story.slug}.html"
        files[name] = _page(
            lang="en-US",
            title=f"{story.title} – The Harbor Post",
            head=head,
            body_class="post-template-default single single-post",
            header=header,
            main=main,
            sidebar=sidebar,
            footer=footer,
        )
        routes.append(_route(url(story), name, HTML, encoding="gzip"))

    def listing(title: str, items: Sequence[Story], body_class: str) -> str:
        entries = "\n".join(
            f"""      <article class="post type-post">
        <h2 class="entry-title"><a href="{url(p)}" rel="bookmark">{esc(p.title)}</a></h2>
        <div class="entry-meta"><time datetime="{p.local(-4).isoformat()}">{p.local(-4):%B %-d, %Y}</time></div>
        <div class="entry-summary"><p>{esc(p.paragraphs[0])}</p></div>
      </article>"""
            for p in items
        )
        main = f"""    <main id="primary" class="site-main">
      <header class="page-header"><h1 class="page-title">{esc(title)}</h1></header>
{entries}
    </main>"""
        head = f'  <meta property="og:type" content="website">\n{feed_link}'
        return _page(
            lang="en-US",
            title=f"{title} – The Harbor Post",
            head=head,
            body_class=body_class,
            header=header,
            main=main,
            sidebar=sidebar,
            footer=footer,
        )

    files["index.html"] = listing("Latest news", live[:10], "home blog")
    for section in SECTIONS[:5]:
        name = f"category-{section.lower()}.html"
        files[name] = listing(
            section, [p for p in live if p.section == section], "archive category"
        )
        routes.append(_route(f"{base}/category/{section.lower()}/", name, HTML))
    files["tag-council.html"] = listing("Tag: council", live[::3], "archive tag")
    routes.append(_route(f"{base}/tag/council/", "tag-council.html", HTML))
    author = live[0].author
    files["author.html"] = listing(
        f"Author: {author}", [p for p in live if p.author == author], "archive author"
    )
    routes.append(_route(f"{base}/author/{_slug(author)}/", "author.html", HTML))
    files["about-us.html"] = _page(
        lang="en-US",
        title="About us – The Harbor Post",
        head='  <meta property="og:type" content="website">',
        body_class="page-template-default page",
        header=header,
        main='    <main id="primary"><h1>About us</h1><p>The Harbor Post has covered the '
        "harbor towns since 1911.</p></main>",
        sidebar=sidebar,
        footer=footer,
    )
    routes.append(_route(f"{base}/about-us/", "about-us.html", HTML))
    items = "\n".join(
        f"""    <item>
      <title>{esc(p.title)}</title>
      <link>{url(p)}</link>
      <dc:creator><![CDATA[{p.author}]]></dc:creator>
      <pubDate>{p.published:%a, %d %b %Y %H:%M:%S +0000}</pubDate>
      <category><![CDATA[{p.section}]]></category>
      <guid isPermaLink="false">{base}/?p={1000 + p.number}</guid>
      <description><![CDATA[{p.paragraphs[0]}]]></description>
    </item>"""
        for p in live[:10]
    )
    files["feed.xml"] = f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
  xmlns:content="http://purl.org/rss/1.0/modules/content/"
  xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>The Harbor Post</title>
    <atom:link href="{base}/feed/" rel="self" type="application/rss+xml" />
    <link>{base}/</link>
    <description>News from the harbor towns since 1911</description>
    <lastBuildDate>{posts[0].published:%a, %d %b %Y %H:%M:%S +0000}</lastBuildDate>
    <language>en-US</language>
    <generator>https://wordpress.org/?v=6.5.3</generator>
{items}
  </channel>
</rss>
"""
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    files["wp-sitemap.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {ns}>\n'
        + "".join(
            f"  <sitemap><loc>{base}/{n}</loc></sitemap>\n"
            for n in (
                "wp-sitemap-posts-post-1.xml",
                "wp-sitemap-taxonomies-category-1.xml",
                "wp-sitemap-users-1.xml",
            )
        )
        + "</sitemapindex>\n"
    )
    files["wp-sitemap-posts-post-1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {ns}>\n'
        + "".join(
            f"  <url><loc>{url(p)}</loc><lastmod>{p.published:%Y-%m-%dT%H:%M:%S+00:00}</lastmod></url>\n"
            for p in posts
        )
        + "</urlset>\n"
    )
    files["wp-sitemap-taxonomies-category-1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {ns}>\n'
        + "".join(f"  <url><loc>{base}/category/{s.lower()}/</loc></url>\n" for s in SECTIONS[:5])
        + "</urlset>\n"
    )
    files["wp-sitemap-users-1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {ns}>\n'
        f"  <url><loc>{base}/author/{_slug(author)}/</loc></url>\n</urlset>\n"
    )
    files["404.html"] = _not_found("The Harbor Post")
    return SiteFiles(
        name="harborpost",
        hosts=[host, "harborpost.example"],
        comment=(
            "The Harbor Post, a WordPress-like site with no spider module (issue 24): RSS feed "
            "(ten newest posts, named by <link rel=alternate>), robots.txt naming the "
            f"wp-sitemap.xml index (fifteen posts; {path(deleted)} was deleted and answers "
            "404), dated permalinks; category, tag, author and about pages are no articles. "
            "Generated, texts invented."
        ),
        headers={"Server": "nginx", "X-Powered-By": "PHP/8.2.12"},
        files=files,
        routes=routes,
    )


# --------------------------------------------------------------------------- coastaldaily


def coastaldaily() -> SiteFiles:
    host = "news.coastaldaily.example"
    base = f"https://{host}"
    items = stories(seed=11, count=12)
    removed = items[4]

    def url(story: Story) -> str:
        return f"{base}/news/{4_210_000 + story.number * 37}/{story.slug}"

    header = f"""  <div class="topbar" role="banner">
    <a class="logo" href="{base}/">Coastal Daily</a>
    <ul class="menu">
      <li><a href="{base}/live">Live</a></li>
      <li><a href="{base}/weather">Weather</a></li>
      <li><a href="{base}/subscribe">Subscribe</a></li>
    </ul>
  </div>"""
    footer = """  <div class="site-footer">
    <p>Coastal Daily is published by Coastal Media Group. Registered in the county of Alden.</p>
    <p>Terms of use | Cookie settings | Advertise with us</p>
  </div>"""
    files: dict[str, str] = {}
    routes: list[dict[str, Any]] = [
        {"url": f"{base}/robots.txt", "file": "robots.txt", "content_type": TEXT},
        _route(f"{base}/", "index.html", HTML),
        _route(f"{base}/sitemap-news.xml", "sitemap-news.xml", XML, encoding="gzip"),
        {"url": url(removed), "status": 410, "body": "Gone\n", "content_type": TEXT},
    ]
    files["robots.txt"] = (
        f"User-agent: *\nDisallow: /api/\nDisallow: /search\n\nSitemap: {base}/sitemap-news.xml\n"
    )
    for story in items:
        if story is removed:
            continue
        local = story.local(1)
        ld = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": story.title,
            "datePublished": local.isoformat(),
            "dateModified": (local + timedelta(minutes=42)).isoformat(),
            "author": [{"@type": "Person", "name": story.author}],
            "publisher": {"@type": "Organization", "name": "Coastal Daily"},
        }
        head = f"""  <meta name="description" content="{esc(story.paragraphs[0])}">
  <script type="application/ld+json">{json.dumps(ld)}</script>"""
        main = f"""    <div id="content" class="story">
      <div class="story-header">
        <div class="kicker">{story.section}</div>
        <h1 class="story-title">{esc(story.title)}</h1>
        <div class="story-meta">By {esc(story.author)} &middot;
          <time datetime="{local.isoformat()}">{local:%d %B %Y, %H:%M}</time></div>
      </div>
      <div class="story-body">
{paragraphs_html(story)}
      </div>
      <div class="related" role="complementary"><h3>More from Coastal Daily</h3>
        <p>Sign up for breaking news alerts on your phone.</p></div>
    </div>"""
        name = f"news-{4_210_000 + story.number * 37}.html"
        files[name] = _page(
            lang="en-GB",
            title=f"{story.title} | Coastal Daily",
            head=head,
            body_class="story-page",
            header=header,
            main=main,
            sidebar="",
            footer=footer,
        )
        routes.append(_route(url(story), name, HTML))
    files["index.html"] = _page(
        lang="en-GB",
        title="Coastal Daily – news from the coast",
        head='  <meta property="og:type" content="website">',
        body_class="front",
        header=header,
        main='    <div id="app" class="front-page"><p>Loading the latest news…</p></div>',
        sidebar="",
        footer=footer,
    )
    news_ns = "http://www.google.com/schemas/sitemap-news/0.9"
    entries = "".join(
        f"""  <url>
    <loc>{url(p)}</loc>
    <news:news>
      <news:publication><news:name>Coastal Daily</news:name><news:language>en</news:language></news:publication>
      <news:publication_date>{p.published:%Y-%m-%dT%H:%M:%SZ}</news:publication_date>
      <news:title>{esc(p.title)}</news:title>
    </news:news>
  </url>
"""
        for p in items
    )
    files["sitemap-news.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="{news_ns}">\n'
        f"{entries}</urlset>\n"
    )
    files["404.html"] = _not_found("Coastal Daily")
    return SiteFiles(
        name="coastaldaily",
        hosts=[host],
        comment=(
            "Coastal Daily, a site with only a Google News sitemap (named in robots.txt) and no "
            "spider module (issue 24): twelve items, of which "
            f"{url(removed).removeprefix(base)} was removed and answers 410; no feed; the front "
            "page is a script shell with no article links. Generated, texts invented."
        ),
        headers={"Server": "Apache"},
        files=files,
        routes=routes,
    )


# --------------------------------------------------------------------------- valleytimes


def valleytimes() -> SiteFiles:
    host = "www.valleytimes.example"
    base = f"https://{host}"
    items = stories(seed=23, count=20)
    looping = items[9]

    def url(story: Story) -> str:
        return f"{base}/stories/{story.slug}-{80_500 + story.number}.html"

    sections = ("local", "business", "sport")
    header = (
        f"""  <header class="masthead">
    <div class="brand"><a href="{base}/">The Valley Times</a><span>Est. 1887</span></div>
    <nav class="sections">
      <a href="{base}/">Front page</a>
"""
        + "".join(f'      <a href="{base}/{s}/">{s.capitalize()}</a>\n' for s in sections)
        + f"""      <a href="{base}/obituaries/">Obituaries</a>
    </nav>
  </header>"""
    )
    footer = f"""  <footer class="colophon">
    <p>The Valley Times, 12 Mill Street, Riverton. Call the newsroom: 555-0142.</p>
    <p><a href="{base}/contact/">Contact</a> | <a href="{base}/privacy/">Privacy</a> | &copy; 2025</p>
  </footer>"""
    files: dict[str, str] = {}
    routes: list[dict[str, Any]] = [
        {
            "url": f"{base}/robots.txt",
            "body": "User-agent: *\nDisallow: /search\n",
            "content_type": TEXT,
        },
        # One listed story answers a redirect to itself with a query, which redirects back.
        {"url": url(looping), "redirect": url(looping) + "?from=list", "status": 302},
        {"url": url(looping) + "?from=list", "redirect": url(looping), "status": 302},
    ]
    for story in items:
        if story is looping:
            continue
        local = story.local(-5)
        head = f"""  <meta property="og:type" content="article">
  <meta property="og:title" content="{esc(story.title)}">
  <meta name="author" content="{esc(story.author)}">"""
        main = f"""    <main class="story">
      <p class="section-label"><a href="{base}/{sections[story.number % 3]}/">{sections[story.number % 3].capitalize()}</a></p>
      <h1>{esc(story.title)}</h1>
      <p class="byline">By {esc(story.author)} | <time datetime="{local.isoformat()}">{local:%B %-d, %Y %-I:%M %p}</time></p>
      <div class="story-text">
{paragraphs_html(story)}
      </div>
      <p class="corrections">To report an error, write to corrections@valleytimes.example.</p>
    </main>"""
        sidebar = f"""    <aside class="most-read"><h2>Most read</h2><ol>
{"".join(f'      <li><a href="{url(p)}">{esc(p.title)}</a></li>{chr(10)}' for p in items[:3])}    </ol></aside>"""
        name = f"story-{80_500 + story.number}.html"
        files[name] = _page(
            lang="en-US",
            title=f"{story.title} - The Valley Times",
            head=head,
            body_class="story-page",
            header=header,
            main=main,
            sidebar=sidebar,
            footer=footer,
        )
        routes.append(_route(url(story), name, HTML))

    def listing(title: str, chunk: Sequence[Story], next_url: str | None) -> str:
        rows = "".join(
            f"""      <div class="teaser">
        <h2><a href="{url(p)}">{esc(p.title)}</a></h2>
        <p class="dateline">{p.local(-5):%B %-d, %Y}</p>
        <p>{esc(p.paragraphs[0])}</p>
      </div>
"""
            for p in chunk
        )
        more = (
            f'      <p class="pager"><a class="next" rel="next" href="{next_url}">Older stories</a></p>\n'
            if next_url
            else ""
        )
        return _page(
            lang="en-US",
            title=f"{title} - The Valley Times",
            head='  <meta property="og:type" content="website">',
            body_class="front",
            header=header,
            main=f'    <main class="stories">\n      <h1>{esc(title)}</h1>\n{rows}{more}    </main>',
            sidebar="",
            footer=footer,
        )

    pages = [items[0:8], items[8:16], items[16:20]]
    page_urls = [f"{base}/", f"{base}/news/page/2/", f"{base}/news/page/3/"]
    for i, chunk in enumerate(pages):
        name = "index.html" if i == 0 else f"news-page-{i + 1}.html"
        nxt = page_urls[i + 1] if i + 1 < len(pages) else None
        files[name] = listing("Latest news" if i == 0 else f"Latest news, page {i + 1}", chunk, nxt)
        routes.append(_route(page_urls[i], name, HTML))
    for i, section in enumerate(sections):
        name = f"section-{section}.html"
        files[name] = listing(section.capitalize(), items[i::3][:6], None)
        routes.append(_route(f"{base}/{section}/", name, HTML))
    files["404.html"] = _not_found("The Valley Times")
    return SiteFiles(
        name="valleytimes",
        hosts=[host, "valleytimes.example"],
        comment=(
            "The Valley Times, a site with only listing pages and no spider module (issue 24): "
            "the front page and two 'Older stories' pages list twenty stories, section pages "
            f"some of them again; no feed, no sitemap. {url(looping).removeprefix(base)} "
            "redirects in a loop. Generated, texts invented."
        ),
        headers={"Server": "nginx"},
        files=files,
        routes=routes,
    )


def _not_found(name: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><title>Page not found – {esc(name)}</title></head>"
        f"<body><h1>Page not found</h1><p>Sorry, {esc(name)} has no page here.</p></body>"
        "</html>\n"
    )


def plainpage() -> SiteFiles:
    """Hosts that are no news site, for ``sources add`` to refuse: one page, a loop, a 404."""
    host = "www.plain-page.example"
    base = f"https://{host}"
    files = {
        "index.html": _page(
            lang="en",
            title="Jane Doe – bookbinder",
            head='  <meta name="description" content="Hand-bound notebooks and repairs.">',
            body_class="home",
            header='  <header><a href="/">Jane Doe</a></header>',
            main="    <main><h1>Hand-bound notebooks</h1><p>I bind notebooks by hand and repair "
            'old books in my workshop.</p><p><a href="/contact">Write to me</a> or see the '
            '<a href="/prices">price list</a>.</p></main>',
            sidebar="",
            footer="  <footer><p>&copy; 2025 Jane Doe</p></footer>",
        ),
        "404.html": _not_found("Jane Doe"),
    }
    routes: list[dict[str, Any]] = [
        _route(f"{base}/", "index.html", HTML),
        # A site that asks robots to stay away: the probe obeys.
        _route("https://closed.plain-page.example/", "index.html", HTML),
        {
            "url": "https://closed.plain-page.example/robots.txt",
            "body": "User-agent: *\nDisallow: /\n",
            "content_type": TEXT,
        },
        {
            "url": "https://loop.plain-page.example/",
            "redirect": "https://loop.plain-page.example/a",
        },
        {
            "url": "https://loop.plain-page.example/a",
            "redirect": "https://loop.plain-page.example/",
        },
    ]
    return SiteFiles(
        name="plainpage",
        hosts=[host, "loop.plain-page.example", "closed.plain-page.example"],
        comment=(
            "No news site, for `newsarchive sources add` to refuse (issue 24): a one-page "
            "homepage with no feed, sitemap or articles; loop.plain-page.example redirects in a "
            "loop; closed.plain-page.example disallows every path in robots.txt; every other "
            "path answers 404. Generated."
        ),
        headers={"Server": "nginx"},
        files=files,
        routes=routes,
    )


SITES: dict[str, Callable[[], SiteFiles]] = {
    "plainpage": plainpage,
    "harborpost": harborpost,
    "coastaldaily": coastaldaily,
    "valleytimes": valleytimes,
}


def main() -> int:
    for build in SITES.values():
        site = build()
        site.write(SITES_DIR)
        print(f"{site.name}: {len(site.files)} files, {len(site.routes)} routes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
