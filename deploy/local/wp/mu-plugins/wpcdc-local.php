<?php
/**
 * Plugin Name: wpcdc local stack guards
 * Description: Keeps the local test WordPress hermetic: no e-mail, no outbound HTTP.
 *
 * Loaded as a must-use plugin (WPMU_PLUGIN_DIR points at this directory from the wp-config.php
 * files that deploy/local/wordpress.py writes), so it is active for the installer, for every
 * driver.php process and for every blog of the network without being "activated" in the database
 * (activating a plugin would itself write wp_options rows, which is CDC traffic we do not want).
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/*
 * No e-mail, ever: wp_install() sends "your new site", wpmu_create_blog() notifies the network
 * admin, and there is no MTA here (PHPMailer would fall back to /usr/sbin/sendmail and either fail
 * or, worse, deliver). Returning a non-null value from pre_wp_mail short-circuits wp_mail(); true
 * means "sent", so callers take their success path. The would-be mail is logged to mail.log next
 * to the site's wp-config.php, which helps when a test wonders what WordPress tried to say.
 */
add_filter(
	'pre_wp_mail',
	static function ( $short_circuit, $atts ) {
		$dir = defined( 'WPCDC_SITE_DIR' ) ? WPCDC_SITE_DIR : null;
		if ( $dir && is_dir( $dir ) ) {
			$to   = is_array( $atts['to'] ?? '' ) ? implode( ', ', $atts['to'] ) : (string) ( $atts['to'] ?? '' );
			$line = gmdate( 'c' ) . "\tto=" . $to . "\tsubject=" . (string) ( $atts['subject'] ?? '' ) . "\n";
			@file_put_contents( $dir . '/mail.log', $line, FILE_APPEND );
		}
		return true;
	},
	10,
	2
);

/*
 * No outbound HTTP: the installer probes pretty permalinks by fetching the site's own URL, the
 * dashboard and update checks call wordpress.org. Nothing listens on http://localhost here and
 * tests must not depend on the network, so every request fails fast with a WP_Error (callers
 * all handle that; e.g. the permalink probe then leaves permalinks as they are).
 */
add_filter(
	'pre_http_request',
	static function () {
		return new WP_Error( 'http_request_blocked', 'wpcdc local stack: outbound HTTP is disabled' );
	},
	1
);
