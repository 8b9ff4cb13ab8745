'use strict'
// node --test consumer/   (npm test): the plan's rules on hand-written events of the contract.
const test = require('node:test')
const assert = require('node:assert/strict')
const { postPlan, termPlan, merge } = require('./plan')

const link = path => ({ url: `http://wp.test${path}`, path })
const post = over => ({
  schema_version: 1, event_id: '1-7-100', op: 'update', action: 'updated', blog_id: 1, post_id: 7,
  post_type: 'post', status: { before: 'publish', after: 'publish' },
  link: { before: link('/2025/06/hello/'), after: link('/2025/06/hello/') },
  changed_fields: ['post_title', 'post_modified', 'post_modified_gmt'], meta: [],
  terms: { added: [], removed: [] }, revisions: [], ...over,
})

test('a title edit revalidates the page and the list', () => {
  assert.deepEqual(postPlan(post({})), { paths: ['/2025/06/hello/', '/'], all: false })
})

test('a slug change revalidates the old and the new path', () => {
  const plan = postPlan(post({ changed_fields: ['post_name'], link: { before: link('/2025/06/hello/'), after: link('/2025/06/bye/') } }))
  assert.deepEqual(plan.paths, ['/2025/06/hello/', '/2025/06/bye/', '/'])
})

test('publishing a draft: the query link is no route', () => {
  const plan = postPlan(post({ action: 'published', status: { before: 'draft', after: 'publish' }, link: { before: link('/?p=7'), after: link('/2025/06/hello/') } }))
  assert.deepEqual(plan.paths, ['/2025/06/hello/', '/'])
})

test('unpublishing and deleting revalidate the path the post had', () => {
  const off = postPlan(post({ action: 'unpublished', status: { before: 'publish', after: 'draft' }, link: { before: link('/2025/06/hello/'), after: link('/?p=7') } }))
  assert.deepEqual(off.paths, ['/2025/06/hello/', '/'])
  const gone = postPlan(post({ op: 'delete', action: 'deleted', status: { before: 'publish', after: null }, link: { before: link('/2025/06/hello/'), after: null }, changed_fields: [] }))
  assert.deepEqual(gone.paths, ['/2025/06/hello/', '/'])
})

test('bookkeeping, meta-only changes, drafts, revisions and other types revalidate nothing', () => {
  assert.deepEqual(postPlan(post({ changed_fields: ['post_modified', 'post_modified_gmt', 'comment_count'] })).paths, [])
  assert.deepEqual(postPlan(post({ changed_fields: [], meta: [{ meta_id: 1, key: 'color', op: 'add', before: null, after: 'teal' }] })).paths, [])
  assert.deepEqual(postPlan(post({ status: { before: 'draft', after: 'draft' } })).paths, [])
  assert.deepEqual(postPlan(post({ action: 'autosaved' })).paths, [])
  assert.deepEqual(postPlan(post({ post_type: 'attachment' })).paths, [])
  assert.deepEqual(postPlan(null).paths, [])
})

test('a page is not on the list; a moved child page gets its paths; a cut fan-out means all', () => {
  const page = post({ post_type: 'page', changed_fields: ['post_name'], link: { before: link('/about/'), after: link('/company/'), descendants: { moved: 0, cut: true } } })
  assert.deepEqual(postPlan(page), { paths: ['/about/', '/company/'], all: true })
  const moved = postPlan(post({ post_type: 'page', action: 'moved', changed_fields: [], link: { before: link('/about/team/'), after: link('/company/team/') } }))
  assert.deepEqual(moved, { paths: ['/about/team/', '/company/team/'], all: false })
})

test('a term rename revalidates everything; a description or a new term nothing', () => {
  const term = over => ({ schema_version: 1, event_id: '1-term-3-5', op: 'update', taxonomy: 'post_tag', changed_fields: ['name'], ...over })
  assert.equal(termPlan(term({})).all, true)
  assert.equal(termPlan(term({ changed_fields: ['description'] })).all, false)
  assert.equal(termPlan(term({ op: 'create', changed_fields: ['name', 'slug', 'parent', 'description'] })).all, false)
  assert.equal(termPlan(term({ taxonomy: 'nav_menu' })).all, false)
})

test('an unknown schema version stops the consumer', () => {
  assert.throws(() => postPlan(post({ schema_version: 2 })), /upgrade/)
})

test('merge unions the paths of a batch', () => {
  assert.deepEqual(merge([{ paths: ['/b/', '/'], all: false }, { paths: ['/a/'], all: false }]), { paths: ['/', '/a/', '/b/'], all: false })
})
