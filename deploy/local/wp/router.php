<?php
/**
 * Router of PHP's built-in web server for the headless WordPress (deploy/local/stack.py's
 * `wordpress-http` service):
 *
 *   WPCDC_WP_CONFIG=/path/headless/wp-config.php php -S 127.0.0.1:PORT -t /usr/share/wordpress router.php
 *
 * Why a router: the built-in server has no rewrite rules, so pretty permalinks and /wp-json/ would
 * be 404s; and Debian's /usr/share/wordpress/wp-config.php (which index.php -> wp-load.php would
 * require) picks a config from /etc/wordpress by host name, global state this project never
 * touches. So every request that is not a static asset runs what wp-blog-header.php runs, with OUR
 * wp-config.php: load WordPress, parse the request (WP::parse_request() matches the rewrite rules
 * against REQUEST_URI, as Apache's mod_rewrite + index.php would), then the template loader. The
 * REST API answers both at /wp-json/... and at /?rest_route=/...
 *
 * Only the public front end is served: wp-admin, wp-login.php, xmlrpc.php and wp-cron.php are
 * refused (the site is edited through driver.php, and cron is off, see wordpress.py).
 */

$wpcdc_path = (string) parse_url( $_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH );

// Static assets of the package (wp-includes/css, js, images): the built-in server sends them.
if ( preg_match( '#\.(css|js|png|jpe?g|gif|svg|webp|ico|woff2?|ttf|map)$#', $wpcdc_path )
	&& is_file( $_SERVER['DOCUMENT_ROOT'] . $wpcdc_path ) ) {
	return false;
}

if ( preg_match( '#^/(wp-admin|wp-login\.php|xmlrpc\.php|wp-cron\.php|wp-signup\.php|wp-activate\.php)#', $wpcdc_path ) ) {
	http_response_code( 403 );
	header( 'Content-Type: text/plain' );
	echo "wpcdc local stack: only the front end and the REST API are served here\n";
	return true;
}

$wpcdc_config = getenv( 'WPCDC_WP_CONFIG' );
if ( ! $wpcdc_config || ! is_file( $wpcdc_config ) ) {
	http_response_code( 500 );
	header( 'Content-Type: text/plain' );
	echo "wpcdc local stack: WPCDC_WP_CONFIG must name the site's wp-config.php\n";
	return true;
}

// As if Apache had rewritten the request to /index.php (WordPress reads these to find the path).
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $_SERVER['DOCUMENT_ROOT'] . '/index.php';
unset( $_SERVER['PATH_INFO'] );

define( 'WP_USE_THEMES', true );
// Global scope on purpose, like wp-blog-header.php: wp-settings.php expects to run at file level.
require $wpcdc_config;
wp();
require ABSPATH . WPINC . '/template-loader.php';
