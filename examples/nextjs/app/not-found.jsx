export default function NotFound() {
  return (
    <article>
      <h1>Not found</h1>
      <p>No published post or page has this address.</p>
    </article>
  )
}
