<?php
/**
 * Plumbing shared by driver.php and install.php: command line, a fake HTTP request for
 * WordPress, and the "exactly one JSON object on stdout" contract.
 *
 * Why the output dance: WordPress echoes whenever it likes (wp_die() pages, deprecation notices,
 * themes, the installer's HTML). The caller (deploy/local/wordpress.py) parses stdout as JSON, so
 * from the very first line everything PHP prints goes into ONE output buffer that can be neither
 * flushed nor removed (only cleaned) and whose handler returns '' - whatever lands there is
 * discarded, even what shutdown hooks print after our result. The result itself is written with
 * fwrite(STDOUT), which bypasses output buffering. PHP warnings go to stderr (display_errors).
 */

error_reporting( E_ALL & ~E_DEPRECATED & ~E_STRICT & ~E_NOTICE );
ini_set( 'display_errors', 'stderr' );
ini_set( 'log_errors', '0' );
ini_set( 'html_errors', '0' );

/** Raised by our wp_die() handler so that a wp_die() deep inside WordPress becomes an error result. */
class Wpcdc_Die extends RuntimeException {
}

/** Process-wide state of the one simulated request. */
final class Wpcdc {
	/** @var bool the result has been written */
	public static $done = false;
	/** @var int ob level of our discarding buffer */
	public static $ob_level = 0;
	/** @var float hrtime (ms) at process start */
	public static $t0 = 0.0;
	/** @var float|null hrtime (ms) once WordPress is loaded */
	public static $t_loaded = null;
	/** @var string action name, for error messages */
	public static $action = '';

	public static function now_ms(): float {
		return hrtime( true ) / 1e6;
	}
}

Wpcdc::$t0 = Wpcdc::now_ms();

/**
 * Start swallowing output and make sure a result is printed however the process ends
 * (fatal error, exit() or wp_die() somewhere inside WordPress).
 */
function wpcdc_begin( string $action ): void {
	Wpcdc::$action = $action;
	// CLEANABLE only: not flushable, not removable - nobody (WordPress's own wp_ob_end_flush_all()
	// on shutdown included) can push buffered output to stdout past this buffer.
	ob_start( static function ( $buffer ) {
		return '';
	}, 0, PHP_OUTPUT_HANDLER_CLEANABLE );
	Wpcdc::$ob_level = ob_get_level();

	register_shutdown_function(
		static function () {
			if ( Wpcdc::$done ) {
				return;
			}
			$err = error_get_last();
			$msg = 'the action ended without a result (exit() or die() inside WordPress)';
			if ( $err && in_array( $err['type'], array( E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR, E_RECOVERABLE_ERROR ), true ) ) {
				$msg = sprintf( 'PHP fatal error: %s in %s:%d', $err['message'], $err['file'], $err['line'] );
			}
			wpcdc_emit( array( 'ok' => false, 'error' => $msg, 'type' => 'exit' ), 1, false );
		}
	);
}

/** Everything printed so far (and clear it). */
function wpcdc_take_output(): string {
	$out = '';
	while ( ob_get_level() > Wpcdc::$ob_level ) {
		$chunk = ob_get_clean();
		$out   = ( false === $chunk ? '' : $chunk ) . $out;
	}
	if ( ob_get_level() === Wpcdc::$ob_level && Wpcdc::$ob_level > 0 ) {
		$chunk = ob_get_contents();
		$out   = ( false === $chunk ? '' : $chunk ) . $out;
		ob_clean();
	}
	return $out;
}

/**
 * Write the one JSON result and end the process.
 *
 * @param array $payload the envelope ({ok, result} or {ok: false, error, ...})
 * @param int   $code    process exit status
 * @param bool  $exit    false when already shutting down
 */
function wpcdc_emit( array $payload, int $code = 0, bool $exit = true ): void {
	if ( Wpcdc::$done ) {
		return;
	}
	Wpcdc::$done = true;
	$output      = wpcdc_take_output();
	if ( empty( $payload['ok'] ) && '' !== trim( $output ) ) {
		$payload['output'] = substr( trim( wp_strip_all_tags_safe( $output ) ), 0, 4000 );
	}
	$now               = Wpcdc::now_ms();
	$payload['timing'] = array(
		'total_ms' => round( $now - Wpcdc::$t0, 1 ),
		'load_ms'  => null === Wpcdc::$t_loaded ? null : round( Wpcdc::$t_loaded - Wpcdc::$t0, 1 ),
		'action_ms' => null === Wpcdc::$t_loaded ? null : round( $now - Wpcdc::$t_loaded, 1 ),
	);
	$json = json_encode( $payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR );
	fwrite( STDOUT, $json . "\n" );
	fflush( STDOUT );
	if ( $exit ) {
		exit( $code );
	}
	if ( $code ) {
		exit( $code );
	}
}

/** HTML from wp_die() pages is unreadable in a Python traceback; keep the text. */
function wp_strip_all_tags_safe( string $html ): string {
	$text = preg_replace( '@<(script|style)[^>]*?>.*?</\\1>@si', '', $html );
	$text = strip_tags( (string) $text );
	return (string) preg_replace( '/\n\s*\n+/', "\n", $text );
}

/** Turn an exception into the error result. */
function wpcdc_emit_exception( Throwable $e ): void {
	wpcdc_emit(
		array(
			'ok'    => false,
			'error' => $e->getMessage(),
			'type'  => get_class( $e ),
			'where' => $e->getFile() . ':' . $e->getLine(),
			'trace' => array_slice( explode( "\n", $e->getTraceAsString() ), 0, 15 ),
		),
		1
	);
}

/**
 * --name=value options and positional arguments.
 *
 * @return array{0: array<string,string>, 1: list<string>}
 */
function wpcdc_parse_argv( array $argv ): array {
	$opts = array();
	$pos  = array();
	foreach ( array_slice( $argv, 1 ) as $arg ) {
		if ( preg_match( '/^--([a-z][a-z0-9_-]*)=(.*)$/s', $arg, $m ) ) {
			$opts[ $m[1] ] = $m[2];
		} else {
			$pos[] = $arg;
		}
	}
	return array( $opts, $pos );
}

/** The action's arguments: one JSON object on stdin (empty stdin means no arguments). */
function wpcdc_read_args(): array {
	$raw = stream_get_contents( STDIN );
	if ( false === $raw || '' === trim( $raw ) ) {
		return array();
	}
	$args = json_decode( $raw, true );
	if ( ! is_array( $args ) ) {
		throw new InvalidArgumentException( 'stdin must hold a JSON object of arguments: ' . json_last_error_msg() );
	}
	return $args;
}

/**
 * Make PHP CLI look like the web request WordPress expects. Multisite resolves the current
 * network/site from HTTP_HOST + REQUEST_URI (ms-settings.php) and dies without them; $pagenow
 * (wp-includes/vars.php) comes from PHP_SELF, which admin code consults.
 */
function wpcdc_fake_request( string $uri = '/', string $method = 'GET', string $host = 'localhost' ): void {
	$path                         = (string) parse_url( $uri, PHP_URL_PATH );
	$_SERVER['HTTP_HOST']         = $host;
	$_SERVER['SERVER_NAME']       = $host;
	$_SERVER['SERVER_PORT']       = '80';
	$_SERVER['SERVER_PROTOCOL']   = 'HTTP/1.1';
	$_SERVER['REQUEST_METHOD']    = $method;
	$_SERVER['REQUEST_URI']       = $uri;
	$_SERVER['PHP_SELF']          = '/' === substr( $path, -1 ) ? $path . 'index.php' : ( str_ends_with( $path, '.php' ) ? $path : '/index.php' );
	$_SERVER['SCRIPT_NAME']       = $_SERVER['PHP_SELF'];
	$_SERVER['REMOTE_ADDR']       = '127.0.0.1';
	$_SERVER['HTTP_USER_AGENT']   = 'wpcdc-driver';
	$_SERVER['REQUEST_TIME']      = time();
	$_SERVER['REQUEST_TIME_FLOAT'] = microtime( true );
	unset( $_SERVER['HTTPS'] );
}

/**
 * wp_die() must not print a page and exit: make it throw, so the action's error result carries
 * the message. Registered through the documented pre-initialised $wp_filter array when WordPress
 * is not loaded yet (plugin.php turns it into WP_Hook objects), so it also covers wp_die() calls
 * made while WordPress boots.
 */
function wpcdc_install_die_handlers(): void {
	$handler = static function () {
		return 'wpcdc_die_handler';
	};
	$filters = array( 'wp_die_handler', 'wp_die_ajax_handler', 'wp_die_json_handler', 'wp_die_jsonp_handler', 'wp_die_xmlrpc_handler', 'wp_die_xml_handler' );
	foreach ( $filters as $filter ) {
		if ( function_exists( 'add_filter' ) ) {
			add_filter( $filter, $handler, PHP_INT_MAX );
		} else {
			$GLOBALS['wp_filter'][ $filter ][ PHP_INT_MAX ][] = array( 'function' => $handler, 'accepted_args' => 1 );
		}
	}
}

/** The wp_die() replacement (see wpcdc_install_die_handlers). */
function wpcdc_die_handler( $message, $title = '', $args = array() ): void {
	if ( function_exists( 'is_wp_error' ) && is_wp_error( $message ) ) {
		$message = implode( '; ', $message->get_error_messages() ) . ' [' . $message->get_error_code() . ']';
	}
	$text = trim( wp_strip_all_tags_safe( is_scalar( $message ) ? (string) $message : print_r( $message, true ) ) );
	$title = is_scalar( $title ) ? (string) $title : '';
	throw new Wpcdc_Die( 'wp_die(): ' . ( '' === $text ? '(no message)' : $text ) . ( '' !== $title ? " ($title)" : '' ) );
}
