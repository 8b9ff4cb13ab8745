// POST /api/revalidate  Authorization: Bearer <REVALIDATE_SECRET>
//   {"paths": ["/2025/06/hello/", "/"]}   revalidate these paths (the page and what it fetched)
//   {"all": true}                          revalidate every page (a term rename, a cut fan-out)
// Answers 200 {"revalidated": [...]} once Next.js has marked them stale: the next request of each
// path renders it again from WordPress. The consumer commits its Kafka offset only after a 200.
import { timingSafeEqual } from 'node:crypto'
import { revalidatePath } from 'next/cache'

export const dynamic = 'force-dynamic'

function authorized(request, secret) {
  const given = Buffer.from(request.headers.get('authorization') ?? '')
  const wanted = Buffer.from(`Bearer ${secret}`)
  return given.length === wanted.length && timingSafeEqual(given, wanted)
}

export async function POST(request) {
  const secret = process.env.REVALIDATE_SECRET
  if (!secret) {
    return Response.json({ error: 'REVALIDATE_SECRET is not set where next start runs' }, { status: 500 })
  }
  if (!authorized(request, secret)) {
    return Response.json({ error: 'wrong or missing Authorization: Bearer <REVALIDATE_SECRET>' }, { status: 401 })
  }
  const body = await request.json().catch(() => null)
  const paths = body?.paths ?? []
  if (!Array.isArray(paths) || paths.some(p => typeof p !== 'string' || !p.startsWith('/') || p.includes('?'))) {
    return Response.json({ error: 'paths must be a list of paths such as "/2025/06/hello/" (no query)' }, { status: 400 })
  }
  if (body?.all === true) revalidatePath('/', 'layout')
  for (const path of paths) revalidatePath(path)
  return Response.json({ revalidated: paths, all: body?.all === true, at: Date.now() })
}
