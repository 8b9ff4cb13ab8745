// Every URL of the site: `/` is the list of posts, any other path is resolved to a post or a page
// through the REST API, so the app's routes are WordPress's permalinks whatever the structure.
//
// Nothing is rendered at build time (no static params) and nothing expires on a timer
// (`revalidate = false`): a path is rendered on its first request, then served from Next.js's
// cache until /api/revalidate names it. A 404 is cached the same way.
import { notFound } from 'next/navigation'
import { findByPath, latestPosts } from '@/lib/wordpress'

export const revalidate = false
export const dynamicParams = true

export async function generateStaticParams() {
  return []
}

function pathFrom(slug) {
  return slug && slug.length ? `/${slug.map(decodeURIComponent).join('/')}/` : '/'
}

function Rendered({ at }) {
  return <footer data-rendered-at={at}>rendered {at}</footer>
}

function Terms({ terms }) {
  return terms.map(term => <span className="term" key={`${term.taxonomy}-${term.id}`}>{term.name}</span>)
}

async function Home() {
  const posts = await latestPosts()
  return (
    <>
      <h1>Latest posts</h1>
      <ul className="posts">
        {posts.map(post => (
          <li className="post" key={post.id} data-post-id={post.id}>
            <h2><a href={post.path} dangerouslySetInnerHTML={{ __html: post.title }} /></h2>
            <p className="meta">{post.date.slice(0, 10)} <Terms terms={post.terms} /></p>
            <div dangerouslySetInnerHTML={{ __html: post.excerpt }} />
          </li>
        ))}
      </ul>
      {posts.length === 0 && <p>No posts yet.</p>}
      <Rendered at={new Date().toISOString()} />
    </>
  )
}

export async function generateMetadata({ params }) {
  const { slug } = await params
  if (!slug || !slug.length) return {}
  const item = await findByPath(pathFrom(slug))
  return item ? { title: item.title.replace(/<[^>]*>/g, '') } : {}
}

export default async function Page({ params }) {
  const { slug } = await params
  const path = pathFrom(slug)
  if (path === '/') return <Home />
  const item = await findByPath(path)
  if (!item) notFound()
  return (
    <>
      <article data-post-id={item.id} data-type={item.type}>
        <h1 dangerouslySetInnerHTML={{ __html: item.title }} />
        {item.type === 'post' && <p className="meta">{item.date.slice(0, 10)} <Terms terms={item.terms} /></p>}
        <div dangerouslySetInnerHTML={{ __html: item.content }} />
      </article>
      <Rendered at={new Date().toISOString()} />
    </>
  )
}
