<?php
/**
 * Installs one WordPress site into an EMPTY database/prefix, the way the web installer does it,
 * without a web server: wp_install() from wp-admin/includes/upgrade.php.
 *
 *   php install.php --config=/path/wp-config.php --mode=single  --url=http://x --title=T --password=P [--timezone=Europe/Berlin]
 *   php install.php --config=/path/wp-config.php --mode=network --url=http://localhost --title=T --password=P [--timezone=...]
 *
 * --mode=network additionally turns the fresh single site into a multisite network (subdirectory
 * install) exactly like Network Setup (wp-admin/network.php) does: install_network() creates the
 * global tables (wp_blogs, wp_site, wp_sitemeta, ...), populate_network() registers network 1
 * with blog 1. (Both functions live in wp-admin/includes/schema.php, which upgrade.php loads;
 * network.php only holds the UI around them.) The caller must then rewrite wp-config.php with the
 * MULTISITE constants - from then on WordPress boots as a network - and create further blogs
 * through driver.php's create_blog action.
 *
 * Prints one JSON object (see lib.php); deploy/local/wordpress.py drives this.
 */

require __DIR__ . '/lib.php';

list( $wpcdc_opts, $wpcdc_pos ) = wpcdc_parse_argv( $argv );
wpcdc_begin( 'install' );

try {
	foreach ( array( 'config', 'mode', 'url', 'title', 'password' ) as $wpcdc_key ) {
		if ( ! isset( $wpcdc_opts[ $wpcdc_key ] ) || '' === $wpcdc_opts[ $wpcdc_key ] ) {
			throw new InvalidArgumentException( "install.php: --$wpcdc_key= is required" );
		}
	}
	if ( ! in_array( $wpcdc_opts['mode'], array( 'single', 'network' ), true ) ) {
		throw new InvalidArgumentException( 'install.php: --mode= must be single or network' );
	}
	$wpcdc_host = (string) parse_url( $wpcdc_opts['url'], PHP_URL_HOST );
	wpcdc_fake_request( '/wp-admin/install.php?step=2', 'POST', $wpcdc_host );

	// What wp-admin/install.php defines. WP_SITEURL makes guess_url() (used by wp_install() for
	// the siteurl/home options) return our URL instead of guessing from a CLI script path; it
	// only exists in this process, the stored options are what later requests use.
	define( 'WP_INSTALLING', true );
	define( 'WP_SITEURL', rtrim( $wpcdc_opts['url'], '/' ) );
	wpcdc_install_die_handlers();

	// Global scope on purpose: wp-settings.php expects to run at file level.
	require $wpcdc_opts['config'];
	Wpcdc::$t_loaded = Wpcdc::now_ms();

	require_once ABSPATH . 'wp-admin/includes/upgrade.php';

	// The must-use plugin already short-circuits wp_mail(); say it here too so this installer
	// never mails even if someone points WPMU_PLUGIN_DIR elsewhere. true = "sent".
	add_filter( 'pre_wp_mail', '__return_true', 1 );

	if ( is_blog_installed() ) {
		throw new RuntimeException( 'already installed: ' . $wpdb->options . ' has a siteurl; drop the tables first' );
	}

	$wpcdc_result = wp_install(
		$wpcdc_opts['title'],
		'admin',
		'admin@example.com',
		true,
		'',
		wp_slash( $wpcdc_opts['password'] ),
		''
	);
	$wpcdc_user_id = (int) $wpcdc_result['user_id'];
	if ( 1 !== $wpcdc_user_id ) {
		throw new RuntimeException( "wp_install() created admin user $wpcdc_user_id, expected 1" );
	}
	wp_set_current_user( $wpcdc_user_id );

	// A real timezone (--timezone=, default UTC) so post_date and post_date_gmt differ like on
	// most real sites - the CDC must keep both as WordPress wrote them.
	update_option( 'timezone_string', (string) ( $wpcdc_opts['timezone'] ?? 'UTC' ) );

	$wpcdc_network = null;
	if ( 'single' === $wpcdc_opts['mode'] ) {
		// wp_install() probes pretty permalinks over HTTP (blocked here) and leaves them off.
		$wp_rewrite->set_permalink_structure( '/%year%/%monthnum%/%day%/%postname%/' );
		flush_rewrite_rules();
	} else {
		// Not multisite yet, so wpdb did not name the global network tables; WP-CLI's
		// multisite-convert does the same before install_network().
		foreach ( $wpdb->tables( 'ms_global' ) as $wpcdc_table => $wpcdc_prefixed ) {
			$wpdb->$wpcdc_table = $wpcdc_prefixed;
		}
		install_network();
		$wpcdc_network = populate_network( 1, $wpcdc_host, 'admin@example.com', $wpcdc_opts['title'] . ' Network', '/', false );
		if ( is_wp_error( $wpcdc_network ) ) {
			throw new RuntimeException( 'populate_network(): ' . $wpcdc_network->get_error_message() );
		}
		// populate_network() set the main site's permalinks to /blog/%year%/%monthnum%/%day%/%postname%/
		// (the "/blog" prefix keeps main-site posts apart from subdirectory blogs).
	}

	wpcdc_emit(
		array(
			'ok'     => true,
			'result' => array(
				'mode'      => $wpcdc_opts['mode'],
				'user_id'   => $wpcdc_user_id,
				'siteurl'   => get_option( 'siteurl' ),
				'prefix'    => $wpdb->prefix,
				'db_version' => (int) get_option( 'db_version' ),
				'permalink_structure' => get_option( 'permalink_structure' ),
				'tables'    => $wpdb->get_col( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $wpdb->base_prefix ) . '%' ) ),
			),
		)
	);
} catch ( Throwable $wpcdc_e ) {
	wpcdc_emit_exception( $wpcdc_e );
}
