// WordPress's REST API, as the pages read it. Every fetch is cached by Next.js (`force-cache`) and
// stays so until the consumer revalidates a path that used it: pages are served stale, never
// re-fetched on a timer. WORDPRESS_URL is read at request time, so `next build` needs no WordPress.

const TAG = 'wordpress'

export function wordpressUrl() {
  const url = process.env.WORDPRESS_URL
  if (!url) {
    throw new Error('WORDPRESS_URL is not set: give the home URL of the WordPress site to render, e.g. http://127.0.0.1:8080')
  }
  return url.replace(/\/+$/, '')
}

async function rest(route, params = {}) {
  const url = new URL(`${wordpressUrl()}/wp-json${route}`)
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value))
  const res = await fetch(url, { cache: 'force-cache', next: { tags: [TAG] } })
  if (!res.ok) {
    throw new Error(`WordPress answered ${res.status} ${res.statusText} for ${url}: is the site up and its REST API public?`)
  }
  return res.json()
}

// The path of a WordPress URL (`http://wp.example/2025/06/hello/` -> `/2025/06/hello/`), decoded,
// which is what the app's routes see.
export function pathOf(link) {
  return decodeURIComponent(new URL(link).pathname)
}

function termsOf(item) {
  const groups = item._embedded?.['wp:term'] ?? []
  return groups.flat().filter(Boolean).map(term => ({ id: term.id, name: term.name, taxonomy: term.taxonomy }))
}

function shape(item, type) {
  return {
    id: item.id,
    type,
    path: pathOf(item.link),
    title: item.title.rendered,
    content: item.content.rendered,
    excerpt: item.excerpt?.rendered ?? '',
    date: item.date,
    terms: termsOf(item),
  }
}

// The newest published posts, for the home page.
export async function latestPosts(count = 20) {
  const items = await rest('/wp/v2/posts', { per_page: count, _embed: 'wp:term' })
  return items.map(item => shape(item, 'post'))
}

// The post or page whose permalink is `path` (`/2025/06/hello/`, `/about/team/`), or null.
// The REST API finds by slug; the permalink then decides (a slug is unique only per date or parent).
export async function findByPath(path) {
  const slug = path.split('/').filter(Boolean).at(-1)
  if (!slug) return null
  for (const [route, type] of [['/wp/v2/posts', 'post'], ['/wp/v2/pages', 'page']]) {
    const items = await rest(route, { slug, _embed: 'wp:term' })
    const hit = items.find(item => pathOf(item.link) === path)
    if (hit) return shape(hit, type)
  }
  return null
}
