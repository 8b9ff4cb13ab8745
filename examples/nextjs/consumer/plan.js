'use strict'
// What to revalidate for one record of wpcdc's topics: pure functions of the documented event
// contract (docs/events.md, docs/schema/*.json), nothing from wpcdc's own code.
//
// A plan is {paths: [...], all: bool}: the app's paths whose HTML an event made stale, or `all`
// when the event cannot say which pages show what changed.

// The post types this app renders, and the wp_posts columns its pages show (title, body, excerpt,
// date, URL, whether it is public). A change of anything else (post_modified alone, comment or ping
// bookkeeping, menu_order of a post, guid) leaves every page as it was.
const RENDERED_TYPES = new Set(['post', 'page'])
const SHOWN_FIELDS = new Set([
  'post_title', 'post_content', 'post_excerpt', 'post_name', 'post_date', 'post_date_gmt',
  'post_status', 'post_parent', 'post_type', 'post_password',
])
// Saved drafts of an edit in progress: no page shows them.
const UNSHOWN_ACTIONS = new Set(['autosaved', 'revision_saved'])
// Taxonomies whose term names the pages show, and the term fields that matter (names on pages;
// slugs in URLs when the permalink structure has %category%).
const SHOWN_TAXONOMIES = new Set(['category', 'post_tag'])
const SHOWN_TERM_FIELDS = new Set(['name', 'slug'])

const NOTHING = Object.freeze({ paths: [], all: false })

class UnsupportedEventError extends Error {}

function checkVersion(event) {
  if (event.schema_version !== 1) {
    throw new UnsupportedEventError(
      `event ${event.event_id} has schema_version ${event.schema_version}; this consumer reads version 1: upgrade it before going on`)
  }
}

// Only published content has a page; anything else links by query (?p=ID), which is no route.
const isPublic = status => status === 'publish'
const routable = link => link && typeof link.path === 'string' && !link.path.includes('?')

// Did the change touch something a page shows?
function shows(event) {
  if (event.op === 'create' || event.op === 'delete' || event.op === 'snapshot') return true
  if (event.action === 'moved' || event.action === 'term_changed') return true
  if ((event.changed_fields ?? []).some(field => SHOWN_FIELDS.has(field))) return true
  const terms = event.terms ?? {}
  if ((terms.added ?? []).length || (terms.removed ?? []).length) return true
  if (event.omitted?.terms_added || event.omitted?.terms_removed) return true
  // Meta is not rendered by this app: a meta-only change (even a kept one like _thumbnail_id) shows nothing.
  return false
}

function postPlan(event) {
  if (event === null) return NOTHING // a tombstone: its delete event came first
  checkVersion(event)
  if (!RENDERED_TYPES.has(event.post_type) || UNSHOWN_ACTIONS.has(event.action)) return NOTHING
  const status = event.status ?? {}
  if (!isPublic(status.before) && !isPublic(status.after)) return NOTHING // drafts, trash, private
  if (!shows(event)) return NOTHING
  const link = event.link ?? {}
  const paths = new Set()
  for (const side of [link.before, link.after]) if (routable(side)) paths.add(side.path)
  if (event.post_type === 'post') paths.add('/') // the home page lists posts
  // An event without links (written before `link` existed) or a fan-out cut short by --link-fanout:
  // the pages it moved are unknown.
  const all = link.before === undefined || link.descendants?.cut === true
  return { paths: [...paths], all }
}

function termPlan(event) {
  if (event === null) return NOTHING
  checkVersion(event)
  if (event.op !== 'update' || !SHOWN_TAXONOMIES.has(event.taxonomy)) return NOTHING
  // A rename shows on every page of a post that has the term and on the list; this app keeps no
  // index of which posts those are (docs/events.md, "Finding the posts of a term"): all pages.
  // A delete needs nothing: WordPress takes the term off each post first, and each post's event
  // says so. A new term is on no post yet.
  if (!(event.changed_fields ?? []).some(field => SHOWN_TERM_FIELDS.has(field))) return NOTHING
  return { paths: ['/'], all: true }
}

// Several records at once (a fetched batch): one revalidation call for all of them.
function merge(plans) {
  const paths = new Set()
  let all = false
  for (const plan of plans) {
    for (const path of plan.paths) paths.add(path)
    all = all || plan.all
  }
  return { paths: [...paths].sort(), all }
}

module.exports = { postPlan, termPlan, merge, NOTHING, UnsupportedEventError }
