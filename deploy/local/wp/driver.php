<?php
/**
 * One editor action through WordPress's OWN PHP API, in its own PHP process.
 *
 *   php driver.php --config=/path/wp-config.php [--blog=N] [--user=ID] ACTION  < args.json
 *
 * Prints exactly one JSON object on stdout:
 *   {"ok": true,  "result": {...}, "timing": {...}}                      exit status 0
 *   {"ok": false, "error": "...", "type": "...", "output": "...", ...}     exit status 1
 *
 * Why one process per action: a web request is one PHP process, and WordPress relies on that.
 * Constants like DOING_AUTOSAVE, REST_REQUEST, WP_ADMIN, DOING_AJAX, DOING_CRON can be defined
 * but never undefined, object caches and static state fill up, hooks get added - simulating two
 * requests in one process would give results no real site produces. So each call here is one
 * request: the constants a real request of that kind would have are defined BEFORE WordPress
 * loads, WordPress is loaded by requiring OUR wp-config.php (not Debian's host-switching one),
 * the current user is the admin (id 1, a super admin on the network) so capability and REST
 * permission checks pass, and for --blog != 1 we switch_to_blog() once loaded.
 *
 * wp-cron never runs here: wp-config.php defines DISABLE_WP_CRON (a due event would otherwise be
 * spawned over HTTP, or run inline, and write rows nobody asked for). publish_scheduled is the
 * explicit "cron ran" action.
 */

require __DIR__ . '/lib.php';

list( $wpcdc_opts, $wpcdc_pos ) = wpcdc_parse_argv( $argv );
$wpcdc_action = (string) ( $wpcdc_pos[0] ?? '' );
wpcdc_begin( $wpcdc_action );

/**
 * What kind of request each action is: [request URI, method, constants to define before load,
 * whether it needs wp-admin/includes/admin.php]. Unknown actions are rejected before loading.
 */
const WPCDC_ACTIONS = array(
	'info'              => array( '/', 'GET', array(), false ),
	'create_post'       => array( '/', 'POST', array(), false ),
	'update_post'       => array( '/', 'POST', array(), false ),
	'set_post_type'     => array( '/', 'POST', array(), false ),
	'publish'           => array( '/', 'POST', array(), false ),
	'schedule'          => array( '/', 'POST', array(), false ),
	'publish_scheduled' => array( '/wp-cron.php', 'GET', array( 'DOING_CRON' ), false ),
	'trash'             => array( '/', 'POST', array(), false ),
	'untrash'           => array( '/', 'POST', array(), false ),
	'delete'            => array( '/', 'POST', array(), false ),
	'set_tags'          => array( '/', 'POST', array(), false ),
	'set_categories'    => array( '/', 'POST', array(), false ),
	'insert_term'       => array( '/', 'POST', array(), false ),
	'update_term'       => array( '/wp-admin/edit-tags.php', 'POST', array( 'WP_ADMIN' ), true ),
	'delete_term'       => array( '/wp-admin/edit-tags.php', 'POST', array( 'WP_ADMIN' ), true ),
	'add_meta'          => array( '/', 'POST', array(), false ),
	'update_meta'       => array( '/', 'POST', array(), false ),
	'delete_meta'       => array( '/', 'POST', array(), false ),
	'update_option'     => array( '/', 'POST', array(), false ),
	'get_option'        => array( '/', 'GET', array(), false ),
	'upload_attachment' => array( '/wp-admin/async-upload.php', 'POST', array( 'WP_ADMIN' ), true ),
	'bulk_edit'         => array( '/wp-admin/edit.php', 'GET', array( 'WP_ADMIN' ), true ),
	'seed'              => array( '/', 'POST', array(), false ),
	'editor_new'        => array( '/wp-admin/post-new.php', 'GET', array( 'WP_ADMIN' ), true ),
	'rest_save'         => array( '/wp-json/wp/v2/posts', 'POST', array( 'REST_REQUEST' ), false ),
	'autosave'          => array( '/wp-json/wp/v2/posts', 'POST', array( 'REST_REQUEST' ), false ),
	'rest_upload'       => array( '/wp-json/wp/v2/media', 'POST', array( 'REST_REQUEST' ), false ),
	'metabox_save'      => array( '/wp-admin/post.php', 'POST', array( 'WP_ADMIN' ), true ),
	'heartbeat_lock'    => array( '/wp-admin/admin-ajax.php', 'POST', array( 'WP_ADMIN', 'DOING_AJAX' ), true ),
	'get_post'          => array( '/', 'GET', array(), false ),
	'create_blog'       => array( '/wp-admin/network/site-new.php', 'POST', array( 'WP_ADMIN', 'WP_NETWORK_ADMIN' ), true ),
	'permalinks'        => array( '/', 'GET', array(), false ),
	'create_user'       => array( '/wp-admin/user-new.php', 'POST', array( 'WP_ADMIN' ), true ),
	'update_user'       => array( '/wp-admin/user-edit.php', 'POST', array( 'WP_ADMIN' ), true ),
);

try {
	if ( ! isset( WPCDC_ACTIONS[ $wpcdc_action ] ) ) {
		throw new InvalidArgumentException( "unknown action '$wpcdc_action'; known: " . implode( ', ', array_keys( WPCDC_ACTIONS ) ) );
	}
	if ( empty( $wpcdc_opts['config'] ) || ! is_file( $wpcdc_opts['config'] ) ) {
		throw new InvalidArgumentException( '--config= must name an existing wp-config.php' );
	}
	$wpcdc_blog = (int) ( $wpcdc_opts['blog'] ?? 1 );
	$wpcdc_user = (int) ( $wpcdc_opts['user'] ?? 1 );
	$wpcdc_args = wpcdc_read_args();

	list( $wpcdc_uri, $wpcdc_method, $wpcdc_constants, $wpcdc_admin ) = WPCDC_ACTIONS[ $wpcdc_action ];
	wpcdc_fake_request( $wpcdc_uri, $wpcdc_method );
	foreach ( $wpcdc_constants as $wpcdc_constant ) {
		define( $wpcdc_constant, true );
	}
	wpcdc_install_die_handlers();

	// Global scope on purpose: wp-settings.php expects to run at file level.
	require $wpcdc_opts['config'];
	Wpcdc::$t_loaded = Wpcdc::now_ms();

	if ( $wpcdc_admin ) {
		require_once ABSPATH . 'wp-admin/includes/admin.php';
	}
	require __DIR__ . '/actions.php';

	wp_set_current_user( $wpcdc_user );
	if ( ! get_current_user_id() ) {
		throw new RuntimeException( "user $wpcdc_user does not exist" );
	}
	if ( 1 !== $wpcdc_blog ) {
		if ( ! is_multisite() ) {
			throw new InvalidArgumentException( "--blog=$wpcdc_blog on a single site (only blog 1 exists)" );
		}
		if ( ! get_site( $wpcdc_blog ) ) {
			throw new InvalidArgumentException( "blog $wpcdc_blog does not exist" );
		}
		switch_to_blog( $wpcdc_blog );
	}

	$wpcdc_result = call_user_func( 'wpcdc_action_' . $wpcdc_action, $wpcdc_args );
	wpcdc_emit( array( 'ok' => true, 'result' => $wpcdc_result ) );
} catch ( Throwable $wpcdc_e ) {
	wpcdc_emit_exception( $wpcdc_e );
}
