// WordPress's permalinks end with a slash (/2025/06/hello/): the app's URLs do too, so the paths
// in wpcdc's events are the app's paths as they are.
/** @type {import('next').NextConfig} */
const nextConfig = {
  trailingSlash: true,
  poweredByHeader: false,
}

export default nextConfig
