// No web fonts, nothing fetched from outside: `next build` runs offline.
export const metadata = {
  title: { default: 'wpcdc headless WordPress', template: '%s · wpcdc headless WordPress' },
}

const css = `
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2327; background: #f6f7f7; }
header { background: #1d2327; color: #fff; padding: 1rem 2rem; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
article, li.post { background: #fff; border-left: 4px solid #2271b1; padding: 1rem 1.5rem; margin-bottom: 1rem; }
ul.posts { list-style: none; padding: 0; }
.meta { color: #646970; font-size: 0.85rem; }
.term { background: #dcdcde; border-radius: 3px; padding: 0 0.4rem; margin-right: 0.3rem; }
footer { max-width: 46rem; margin: 0 auto 2rem; padding: 0 1rem; color: #646970; font-size: 0.75rem; }
`

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <head>
        <style>{css}</style>
      </head>
      <body>
        <header><a href="/">wpcdc headless WordPress</a></header>
        <main>{children}</main>
      </body>
    </html>
  )
}
